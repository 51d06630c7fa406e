"""What the jobs of one experiment share in a process: the plan, the device, the loaded datasets,
and the model builders. A job is what one Snakemake rule runs in one process (`lth job STAGE ...`),
so start-up is paid once for all the runs it trains; `Context.run` runs one (lth.jobs.stages).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import torch

from lth.data import pins
from lth.data.adapt import adapt_splits
from lth.data.splits import load_splits
from lth.jobs import provenance
from lth.models import build_model, output_layer_name
from lth.plan.facts import augments, input_shape, num_classes
from lth.plan.imp import Plan
from lth.plan.job import Job
from lth.plan.layout import tensors_file
from lth.pruning import masks
from lth.store import artifacts


class Context:
    """The plan, the device, loaded datasets (see the module docstring)."""

    def __init__(self, plan: Plan, device: torch.device, track_uri: str | None = None):
        self.plan, self.device, self.track_uri = plan, device, track_uri
        self._splits: dict[str | None, Any] = {}

    def run(self, job: Job) -> list[dict[str, Any]]:
        """Run `job`; the records of the runs it trained (or had finished before)."""
        from lth.jobs.stages import run

        return run(self, job)

    def load(self, path: Path, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """A tensor file's tensors (checked), on the job's device unless `device` says otherwise: the one
        place where what a job reads from disk meets its device."""
        return artifacts.load_tensors(path, self.device if device is None else device)

    def dataset(self, target: str | None = None):
        s = self.plan.settings
        return s.transfer.targets[target].dataset if target else s.dataset

    def splits(self, target: str | None = None):
        """A dataset's splits on the device; a transfer target's inputs adapted to the source model."""
        if target not in self._splits:
            d = self.dataset(target)
            self.check_pinned(tensors_file(self.plan.data_dir, d))
            splits = load_splits(d.name, self.plan.data_dir, val_size=d.val_size, split_seed=d.split_seed,
                                 options=d.options.thaw() or None, device=self.device, label_noise=d.label_noise,
                                 normalise=d.normalise)
            if target:
                splits = adapt_splits(splits, input_shape(self.plan.settings.dataset))
            self._splits[target] = splits
        return self._splits[target]

    def check_pinned(self, path: Path) -> None:
        """A dataset file has the bytes data.dvc pins, or else those it had when fetched (lth.data.pins)."""
        pinned = pins.load(self.plan.workflow["pins"]) if self.plan.workflow.get("pins") else None
        if path.is_file():
            pins.verify(path, self.plan.data_dir, pinned)

    def new_model(self, seed: int, target: str | None = None) -> torch.nn.Module:
        """The experiment's model, initialised from `seed`, with the output head of `target`'s classes."""
        s = self.plan.settings
        return build_model(s.model.name, input_shape(s.dataset), num_classes(self.dataset(target)), seed=seed,
                           init=s.model.init, **s.model.options).to(self.device)

    def theta_0(self, seed: int) -> torch.nn.Module:
        """The dense run's starting network: the model initialised from `seed`, or the pre-trained
        network it starts from (model.pretrained, lth.plan.pretrained)."""
        model = self.new_model(seed)
        if self.plan.settings.model.pretrained is not None:
            from lth.jobs.transfer import load_into
            from lth.plan.pretrained import weights_file

            path = weights_file(self.plan.layout.root, self.plan.settings, seed)[0]
            load_into(model, self.load(path), output_layer_name(model), str(path))
        return model

    def kinds(self, model) -> dict[str, str]:
        """The prunable parameters of `model` under the settings, by layer kind."""
        return masks.layer_kinds(model, self.plan.settings.pruning.exclude, self.plan.settings.pruning.biases)

    def full_mask(self, model) -> masks.Mask:
        """Nothing of `model` pruned yet: the dense run's mask."""
        return masks.full_mask(model, self.plan.settings.pruning.exclude, self.plan.settings.pruning.biases)

    def augment(self, info) -> bool:
        return augments(self.plan.settings.training, info.name)

    @cache
    def provenance(self, target: str | None = None, fingerprint: str = "") -> dict[str, Any]:
        return provenance.record(tensors_file(self.plan.data_dir, self.dataset(target)), self.device, fingerprint,
                                 self.plan.settings.training.precision)
