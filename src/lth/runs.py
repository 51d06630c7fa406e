"""The stage jobs of one experiment: dense training, a pruning round, retraining a variant.

Variant semantics (DESIGN.md stage 4), all with the same budget of T-k iterations, k..T:
  ticket        theta_k under the chain's mask, schedule resumed at k
  reinit        the ticket's mask on a fresh init (another seed)           - the LTH control
  random_prune  a random mask with the ticket's per-layer counts, on theta_k
  lr_rewind     previous level's final weights under the chain's mask, schedule rewound to k
  finetune      previous level's final weights under the chain's mask, at the final learning rate
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

import lth
from lth import artifacts, masks
from lth.errors import LTHError
from lth.layout import DENSE, Layout
from lth.pruning import prune, random_with_counts
from lth.seeding import derive_seed
from lth.files import read_json, write_json
from lth.settings import CHAIN_OF, claim_results_folder, core, fingerprint
from lth.training import Segment, lr_at, train


def pick_device(requested: str = "auto") -> torch.device:
    """The GPU when one is visible (and not refused), the CPU otherwise."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise LTHError(f"--device {requested}: no CUDA device is visible")
    return torch.device(requested)


@dataclass
class Experiment:
    """One experiment's settings, results folder, data and device: what every stage job needs."""

    settings: dict[str, Any]
    layout: Layout
    data_dir: Path = Path("data")
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    track_uri: str | None = None  # live tracking: log each run to MLflow as soon as it is trained

    def __post_init__(self):
        self.fingerprint = fingerprint(self.settings)
        claim_results_folder(self.layout.root, self.settings)

    @cached_property
    def splits(self):
        return self._load(self.settings["dataset"])

    def _load(self, d: dict[str, Any]):
        from lth.datasets import load_splits

        return load_splits(d["name"], self.data_dir, val_size=d["val_size"], split_seed=d["split_seed"],
                           options=d["options"] or None, device=self.device)

    @cached_property
    def provenance(self) -> dict[str, Any]:
        return self._provenance(self.settings["dataset"])

    def target_provenance(self, target: str) -> dict[str, Any]:
        return self._provenance(self.settings["transfer"]["targets"][target]["dataset"])

    def _provenance(self, d: dict[str, Any]) -> dict[str, Any]:
        from lth.datasets import TENSORS_FILE, dataset_dir, file_sha256

        data_file = dataset_dir(self.data_dir, d["name"], d["options"] or None) / TENSORS_FILE
        return {"lth_version": lth.__version__, "torch_version": torch.__version__, "git_commit": git_commit(),
                "dataset_sha256": file_sha256(data_file), "device": str(self.device),
                "settings_fingerprint": self.fingerprint}

    def new_model(self, seed: int, num_classes: int | None = None) -> torch.nn.Module:
        """The experiment's model, initialised from `seed` (`num_classes`: a transfer target's head)."""
        from lth.datasets import dataset_info
        from lth.models import build_model

        m, info = self.settings["model"], dataset_info(self.settings["dataset"]["name"])
        return build_model(m["name"], info.input_shape, num_classes or info.num_classes, seed=seed,
                           **m["options"]).to(self.device)

    def augment(self, info) -> bool:
        """Crop/flip augmentation: as configured, else the dataset's default (`info.augment`)."""
        flag = self.settings["training"]["augment"]
        return info.augment if flag is None else flag

    def kinds(self, model) -> dict[str, str]:
        return masks.layer_kinds(model, self.settings["pruning"]["exclude"])

    def _segment(self, seed: int, level: int, variant: str, start: int, lr, target: str | None = None) -> Segment:
        where = f"{seed}/{level}/{variant}" + (f"/{target}" if target else "")
        return Segment(start=start, stop=self.settings["training"]["iterations"], lr=lr,
                       data_seed=derive_seed(seed, "data", *([target] if target else [])),
                       checkpoint=self.layout.checkpoint(seed, level, variant, target),
                       fingerprint=f"{self.fingerprint}/{where}", label=where)

    def _finish(self, seed, level, variant, model, mask, result, started, target=None) -> dict[str, Any]:
        """Write the run's outputs (metrics last: its presence means the run is complete)."""
        provenance = self.provenance if target is None else self.target_provenance(target)
        record = {"seed": seed, "level": level, "variant": variant, "target": target or "",
                  "weights_remaining": masks.density(mask), "layer_density": masks.layer_density(mask),
                  "curves": result["curves"],
                  "summary": {**result["summary"], "wall_seconds": time.perf_counter() - started},
                  "provenance": provenance}
        artifacts.save_tensors(self.layout.mask(seed, level, variant, target), mask)
        artifacts.save_tensors(self.layout.final(seed, level, variant, target), model.state_dict())
        write_json(self.layout.metrics(seed, level, variant, target), record)
        self.layout.checkpoint(seed, level, variant, target).unlink(missing_ok=True)
        if self.track_uri:
            from lth.tracking import log_live

            log_live(self.track_uri, self.layout.root.name, core(self.settings),
                     self.layout.run_dir(seed, level, variant, target))
        return record

    # --- stage 2: dense training ------------------------------------------------------------
    def train_dense(self, seed: int) -> dict[str, Any]:
        """Level 0 from theta_0 (seeded by `seed`), saving theta_0, theta_k and the final weights."""
        started = time.perf_counter()
        k = self.settings["rewind_iteration"]
        model = self.new_model(seed)
        artifacts.save_tensors(self.layout.init(seed), model.state_dict())
        if k == 0:
            artifacts.save_tensors(self.layout.rewind(seed), model.state_dict())
        mask = masks.full_mask(model, self.settings["pruning"]["exclude"])
        seg = self._segment(seed, 0, DENSE, 0, lambda t: lr_at(self.settings["training"], t))
        if k > 0:
            seg.snapshot_at = k
            seg.on_snapshot = lambda state: artifacts.save_tensors(self.layout.rewind(seed), state)
        result = train(model, mask, self.splits, self.settings["training"], seg, augment=self.augment(self.splits.info))
        return self._finish(seed, 0, DENSE, model, mask, result, started)

    # --- stage 3: pruning -------------------------------------------------------------------
    def prune_level(self, seed: int, level: int, chain: str) -> masks.Mask:
        """Mask of level `level` of `chain`: the previous level's trained weights, pruned once more."""
        if level < 1:
            raise LTHError(f"level {level}: pruning starts at level 1")
        prev_level, prev_variant = self.layout.previous(seed, level, chain)
        weights = artifacts.load_tensors(self.layout.final(seed, prev_level, prev_variant))
        old = artifacts.load_tensors(self.layout.mask(seed, prev_level, prev_variant))
        model = self.new_model(seed)
        masks.check_mask(model, old, str(self.layout.mask(seed, prev_level, prev_variant)))
        p = self.settings["pruning"]
        new = prune(p["strategy"], weights, old, self.kinds(model), p["rates"], p["global_rate"])
        artifacts.save_tensors(self.layout.mask(seed, level, chain), new)
        return new

    # --- stage 4: retraining with rewinding ------------------------------------------------
    def start_state(self, seed: int, level: int, variant: str):
        """(model at its starting weights, mask, first iteration, lr function) of a variant's run."""
        training = self.settings["training"]
        k, T = self.settings["rewind_iteration"], training["iterations"]
        chain = CHAIN_OF.get(variant)
        if chain is None or level < 1:
            raise LTHError(f"variant '{variant}' at level {level}: variants are "
                           f"{', '.join(CHAIN_OF)} at levels >= 1")
        mask_path = self.layout.mask(seed, level, chain)
        mask = artifacts.load_tensors(mask_path)
        # reinit: a fresh init from another seed; the others overwrite theirs with loaded weights
        model = self.new_model(derive_seed(seed, "reinit", level) if variant == "reinit" else seed)
        masks.check_mask(model, mask, str(mask_path))
        schedule = lambda t: lr_at(training, t)  # noqa: E731
        if variant in ("ticket", "random_prune"):
            artifacts.load_weights(model, self.layout.rewind(seed))
        elif variant != "reinit":  # lr_rewind, finetune: continue from the previous level's trained weights
            artifacts.load_weights(model, self.layout.final(seed, *self.layout.previous(seed, level, chain)))
        if variant == "random_prune":
            g = torch.Generator().manual_seed(derive_seed(seed, "random_prune", level))
            mask = random_with_counts(mask, masks.counts(mask), g)
        if variant == "finetune":
            final_lr = lr_at(training, T - 1)
            schedule = lambda t: final_lr  # noqa: E731
        masks.apply_mask(model, mask)
        return model, mask, k, schedule

    def train_variant(self, seed: int, level: int, variant: str) -> dict[str, Any]:
        started = time.perf_counter()
        model, mask, start, schedule = self.start_state(seed, level, variant)
        seg = self._segment(seed, level, variant, start, schedule)
        result = train(model, mask, self.splits, self.settings["training"], seg, augment=self.augment(self.splits.info))
        return self._finish(seed, level, variant, model, mask, result, started)

    def train_level(self, seed: int, level: int, chain: str, variants: list[str]) -> dict[str, Any]:
        """One IMP round of a chain in one process: prune its mask, train its variants.

        Runs finished before an interruption (their metrics.json exists) are kept, not redone.
        """
        self.prune_level(seed, level, chain)
        records = {}
        for variant in variants:
            if CHAIN_OF.get(variant) != chain:
                raise LTHError(f"variant '{variant}' does not belong to the {chain} chain")
            done = self.layout.metrics(seed, level, variant)
            records[variant] = read_json(done) if done.exists() else self.train_variant(seed, level, variant)
        write_json(self.layout.level_record(seed, level, chain),
                   {v: str(self.layout.metrics(seed, level, v).relative_to(self.layout.root)) for v in variants})
        return records

    # --- stage 5: transfer -------------------------------------------------------------------
    def target_splits(self, target: str):
        """A transfer target's data, inputs adapted to the source model's input shape."""
        from lth.datasets import dataset_info
        from lth.transfer import adapt_splits

        cache = self.__dict__.setdefault("_target_splits", {})
        if target not in cache:
            shape = dataset_info(self.settings["dataset"]["name"]).input_shape
            cache[target] = adapt_splits(self._load(self.settings["transfer"]["targets"][target]["dataset"]), shape)
        return cache[target]

    def train_transfer(self, seed: int, target: str, levels: list[int], variants: list[str]) -> dict[str, Any]:
        """The transfer runs of (seed, target) in one process; runs finished before are kept.

        Level 0 trains `dense` on the target, each level L >= 1 the other variants.
        """
        records = {}
        for level in levels:
            for variant in [v for v in variants if (v == "dense") == (level == 0)]:
                done = self.layout.metrics(seed, level, variant, target)
                records[level, variant] = (read_json(done) if done.exists()
                                           else self._transfer_run(seed, target, level, variant))
        write_json(self.layout.transfer_record(seed, target),
                   {f"{level}/{variant}": str(self.layout.metrics(seed, level, variant, target)
                                              .relative_to(self.layout.root)) for level, variant in records})
        return records

    def transfer_start(self, seed: int, target: str, level: int, variant: str):
        """(model, mask) a transfer run starts from (see lth.transfer and the variants there).

        ticket_transfer: the source's level-L ticket mask and rewound weights theta_k;
        mask_transfer: that mask on a fresh init; random_prune: a random mask with the ticket's
        per-layer counts, on theta_k; dense (level 0): theta_k unpruned.
        """
        from lth import transfer
        from lth.models import output_layer_name

        splits = self.target_splits(target)
        model = self.new_model(derive_seed(seed, "transfer", target, level, variant), splits.info.num_classes)
        head = output_layer_name(model)
        rewind = artifacts.load_tensors(self.layout.rewind(seed))
        if variant != "mask_transfer":
            transfer.load_source_weights(model, rewind, head)
        if variant == "dense":
            mask = masks.full_mask(model, self.settings["pruning"]["exclude"])
        else:
            mask = transfer.target_mask(artifacts.load_tensors(self.layout.mask(seed, level, "ticket")), model, head)
        if variant == "random_prune":
            g = torch.Generator().manual_seed(derive_seed(seed, "random_prune", target, level))
            mask = random_with_counts(mask, masks.counts(mask), g)
        masks.apply_mask(model, mask)
        return model, mask

    def _transfer_run(self, seed: int, target: str, level: int, variant: str) -> dict[str, Any]:
        from lth.transfer import VARIANTS

        if variant not in VARIANTS or (variant == "dense") != (level == 0):
            raise LTHError(f"transfer variant '{variant}' at level {level}: 'dense' runs at level 0, "
                           f"{', '.join(VARIANTS[:-1])} at levels >= 1")
        started = time.perf_counter()
        model, mask = self.transfer_start(seed, target, level, variant)
        training = self.settings["training"]
        seg = self._segment(seed, level, variant, self.settings["rewind_iteration"], lambda t: lr_at(training, t),
                            target)
        splits = self.target_splits(target)
        result = train(model, mask, splits, training, seg, augment=self.augment(splits.info))
        return self._finish(seed, level, variant, model, mask, result, started, target)


_GIT_COMMIT: str | None = None


def git_commit() -> str:
    """Commit of the repository holding the lth code that runs ("+dirty" if modified; "unknown"
    for an installed copy outside a repository), whatever the working directory."""
    global _GIT_COMMIT
    if _GIT_COMMIT is None:
        git = ["git", "-C", str(Path(__file__).resolve().parent)]
        try:
            sha = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10).stdout.strip()
            dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                   text=True, timeout=10).stdout.strip()
            _GIT_COMMIT = (sha + ("+dirty" if dirty else "")) if sha else "unknown"
        except (OSError, subprocess.SubprocessError):
            _GIT_COMMIT = "unknown"
    return _GIT_COMMIT
