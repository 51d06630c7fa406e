"""Where every artifact lives: a run key -> its folder and files. Free of torch.

    <data_dir>/<dataset>[-<options hash>]/tensors.safetensors      a fetched dataset
    <root>/settings.json                          the experiment's resolved settings (lth.plan.imp)
    <root>/dense-<fp>/seed<S>/                    the dense run (level 0)
        init.safetensors, rewind<K>.safetensors   theta_0, and theta_k for a rewind point K > 0
    <root>/imp-<fp>/seed<S>/level<LL>/<variant>/  a run of level LL >= 1
    <root>/<kind>-<fp>/jobs/<job>.json            marks a finished level or controls job (all seeds;
                                                  <kind>: imp or oneshot)
    <root>/oneshot-<fp>/seed<S>/level<D>/<variant>-<mfp>/   a one-shot run at density D/10,000
                                                  (lth.plan.oneshot), <mfp> its method's fingerprint
    <root>/transfer-<T>-<fp>/seed<S>/level<LL>/<variant>/   a level-LL ticket trained on target T
    <root>/transfer-<T>-<fp>/jobs/<job>.json                marks a finished transfer job
    <root>/<analysis>-<fp>/seed<S>/level<LL>/<variant>/     a run an analysis trains (lth.analyses)
    <root>/<analysis>-<fp>/seed<S>/level<LL>-k<K>.json      marks a finished analysis job
Every run folder holds mask.safetensors, final.safetensors and metrics.json (written last).
<fp> is the stage's settings fingerprint (lth.plan.fingerprints.fingerprints): changed settings get new
folders, and a stage whose settings did not change keeps its runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lth.core.errors import LTHError
from lth.plan.variants import DENSE

TENSORS_FILE = "tensors.safetensors"


def canonical_options(name: str, options) -> str | None:
    """Canonical JSON of a dataset's options (None when there are none), so equal options share a folder."""
    if not options:
        return None
    if not hasattr(options, "items"):
        raise LTHError(f"dataset {name!r}: options must be a mapping, got {options!r}")
    try:
        return json.dumps(dict(options), sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise LTHError(f"dataset {name!r}: options {options!r} are not JSON-serialisable ({e})") from None


def dataset_dir(data_dir, name: str, options=None) -> Path:
    """`data_dir/name`, or `data_dir/name-<hash>` for non-default options, so variants never collide."""
    from lth.core.parts import DATASETS

    DATASETS[name]  # an unknown name is an error naming the known ones
    canon = canonical_options(name, options)
    if canon is None:
        return Path(data_dir) / name
    return Path(data_dir) / f"{name}-{hashlib.sha256(canon.encode()).hexdigest()[:8]}"


def tensors_file(data_dir, dataset) -> Path:
    """The file `lth fetch` writes for a dataset's settings ({name, options, ...})."""
    return dataset_dir(data_dir, dataset["name"], dataset["options"] or None) / TENSORS_FILE


def level_name(level) -> str:
    """A level in file names: two digits at least (a str: a Snakemake wildcard, kept as it is)."""
    return level if isinstance(level, str) else f"{level:02d}"


@dataclass(frozen=True)
class RunKey:
    """One training run of an experiment. Level 0 is the dense run; target: a transfer target."""

    seed: int
    level: int
    variant: str
    target: str | None = None
    analysis: str | None = None  # a run that an analysis trains for itself (lth.analyses)

    def __str__(self) -> str:
        where = f" on {self.target}" if self.target else (f" for {self.analysis}" if self.analysis else "")
        return f"seed {self.seed} level {self.level} {self.variant}{where}"


@dataclass(frozen=True)
class Layout:
    """The folders and files of one experiment's results. `fingerprints` names the stage folders
    (a mapping that answers "{fp}" for every stage turns the paths into Snakemake patterns)."""

    root: Path
    fingerprints: Mapping[str, str] = field(default_factory=dict)  # lth.plan.fingerprints.fingerprints
    kind: str = "imp"  # the experiment kind: names the folder of the pruned runs

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    # --- the experiment's own files -------------------------------------------------------------
    @property
    def settings(self) -> Path:
        return self.root / "settings.json"

    def table(self, name: str) -> Path:
        """A table of the experiment: summary.csv, layer_density.csv, analysis-<name>.csv."""
        return self.root / name

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    @property
    def gpu_slots(self) -> Path:
        """The folder of the GPU slots' locks (lth.jobs.device), shared by every experiment of the results
        folder."""
        return self.root.parent / ".locks" / "gpus"

    def lock(self, name: str) -> Path:
        """The lock a running job holds (lth.jobs), so that it never runs twice at once; beside the
        experiment's folder, not in it (a lock is no result, and DVC versions that folder)."""
        return self.root.parent / ".locks" / self.root.name / f"{name}.lock"

    # --- stage folders and runs -------------------------------------------------------------------
    def stage_dir(self, stage: str) -> Path:
        """dense-<fp>, or the pruned runs' <kind>-<fp> (stage "imp", whatever the kind)."""
        return self.root / f"{self.kind if stage == 'imp' else stage}-{self.fingerprints[stage]}"

    def transfer_dir(self, target: str) -> Path:
        return self.root / f"transfer-{target}-{self.fingerprints[f'transfer:{target}']}"

    def pruned_dir(self, target: str | None = None) -> Path:
        """The folder of the pruned runs (imp-<fp>), or of a target's transfer runs, and of their jobs."""
        return self.transfer_dir(target) if target else self.stage_dir("imp")

    def seed_dir(self, seed: int, target: str | None = None) -> Path:
        """Where a seed's pruned runs live: in imp-<fp>, or in the target's transfer folder."""
        return self.pruned_dir(target) / f"seed{seed}"

    def analysis_dir(self, name: str) -> Path:
        return self.root / f"{name}-{self.fingerprints[f'analysis:{name}']}"

    def run_dir(self, key: RunKey) -> Path:
        if key.analysis:
            return self.analysis_dir(key.analysis) / f"seed{key.seed}" / f"level{level_name(key.level)}" / key.variant
        if key.level == 0 and not key.target:
            return self.stage_dir("dense") / f"seed{key.seed}"
        return self.seed_dir(key.seed, key.target) / f"level{level_name(key.level)}" / self.variant_dir(key.variant)

    def variant_dir(self, variant: str) -> str:
        """A variant's folder name: with its method's fingerprint when it has one (one-shot methods,
        whose settings differ one from another), so changed settings of one method get new folders."""
        fp = dict.get(self.fingerprints, f"method:{variant.split('-')[0]}")
        return f"{variant}-{fp}" if fp else variant

    def mask(self, key: RunKey) -> Path:
        return self.run_dir(key) / "mask.safetensors"

    def final(self, key: RunKey) -> Path:
        return self.run_dir(key) / "final.safetensors"

    def metrics(self, key: RunKey) -> Path:
        return self.run_dir(key) / "metrics.json"

    def snapshot(self, key: RunKey, t: int) -> Path:
        """The weights run `key` had at iteration t, kept for a later pruning step (`previous_iteration`)."""
        return self.run_dir(key) / f"weights{t}.safetensors"

    def checkpoint(self, key: RunKey) -> Path:
        return self.run_dir(key) / "resume.pt"

    def init(self, seed: int) -> Path:
        return self.run_dir(RunKey(seed, 0, DENSE)) / "init.safetensors"

    def rewind(self, seed: int, k: int) -> Path:
        """theta_k: theta_0 itself for k = 0, else the dense run replayed to iteration k."""
        return self.init(seed) if k == 0 else self.run_dir(RunKey(seed, 0, DENSE)) / f"rewind{k}.safetensors"

    def job_record(self, name: str, target: str | None = None) -> Path:
        """Written when a level, controls or transfer job (named `name`, which ends with the id of the
        runs it holds) is complete: which runs it holds. Beside the runs of every seed it trains."""
        return self.pruned_dir(target) / "jobs" / f"{name}.json"

    def group_checkpoint(self, name: str, target: str | None = None) -> Path:
        """The resume checkpoint of runs trained together (lth.training.batched), named by their keys."""
        return self.pruned_dir(target) / "groups" / f"{name}.pt"

    def analysis_record(self, name: str, seed: int, level: int, k: int) -> Path:
        """Written when an analysis job (name, seed, level, k) has trained its runs."""
        return self.analysis_dir(name) / f"seed{seed}" / f"level{level_name(level)}-k{k}.json"
