"""Where every artifact of an experiment lives: the one place that knows the paths.

    <root>/settings.json                       resolved settings of the experiment
    <root>/seed<S>/level<LL>/<variant>/        one training run
        mask.safetensors   the mask trained under (level 0: all ones)
        final.safetensors  trained weights
        metrics.json       curves, summary, provenance
        init.safetensors, rewind.safetensors   (dense only) theta_0 and theta_k
    <root>/seed<S>/level<LL>/<chain>.json      marks a finished level job of a mask chain
    <root>/seed<S>/transfer-<T>/level<LL>/<variant>/   a level-LL ticket trained on target T
    <root>/seed<S>/transfer-<T>.json                   marks a finished transfer job

Level 0 holds the variant "dense". Level L >= 1 of a chain reads level L-1 of the same chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lth.settings import CHAIN_OF

DENSE = "dense"


@dataclass(frozen=True)
class Layout:
    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def settings(self) -> Path:
        return self.root / "settings.json"

    def run_dir(self, seed: int, level: int, variant: str, target: str | None = None) -> Path:
        seed_dir = self.root / f"seed{seed}"
        if target:  # a source ticket trained on transfer target `target`
            seed_dir = seed_dir / f"transfer-{target}"
        return seed_dir / f"level{level:02d}" / variant

    def mask(self, seed: int, level: int, variant: str, target: str | None = None) -> Path:
        return self.run_dir(seed, level, variant, target) / "mask.safetensors"

    def final(self, seed: int, level: int, variant: str, target: str | None = None) -> Path:
        return self.run_dir(seed, level, variant, target) / "final.safetensors"

    def metrics(self, seed: int, level: int, variant: str, target: str | None = None) -> Path:
        return self.run_dir(seed, level, variant, target) / "metrics.json"

    def checkpoint(self, seed: int, level: int, variant: str, target: str | None = None) -> Path:
        return self.run_dir(seed, level, variant, target) / "resume.pt"

    def level_record(self, seed: int, level: int, chain: str) -> Path:
        """Written when a level job of `chain` is complete: which runs it holds."""
        return self.root / f"seed{seed}" / f"level{level:02d}" / f"{chain}.json"

    def transfer_record(self, seed: int, target: str) -> Path:
        """Written when the transfer job of (seed, target) is complete."""
        return self.root / f"seed{seed}" / f"transfer-{target}.json"

    def init(self, seed: int) -> Path:
        return self.run_dir(seed, 0, DENSE) / "init.safetensors"

    def rewind(self, seed: int) -> Path:
        return self.run_dir(seed, 0, DENSE) / "rewind.safetensors"

    def previous(self, seed: int, level: int, variant: str) -> tuple[int, str]:
        """(level, variant) of the run whose trained weights level `level` of this variant's chain prunes."""
        return (0, DENSE) if level == 1 else (level - 1, CHAIN_OF[variant])
