"""The jobs of an experiment, each composed of the small pieces: start state (lth.start), the
training loop (lth.training), writing results (lth.results) and tracking (lth.tracking).

A job is what one Snakemake rule runs in one process (`lth job STAGE ...`), so start-up is paid
once for all the runs it trains; `lth.plan` says which runs those are and what the job reads.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import torch

import lth
from lth import artifacts, masks
from lth.errors import LTHError
from lth.files import write_json
from lth.layout import RunKey, tensors_file
from lth.parts import SCORES
from lth.plan import Job, Plan
from lth.pruning import Context as PruneContext
from lth.results import finished, write_run
from lth.seeding import derive_seed
from lth.settings import augments, input_shape, num_classes
from lth.start import start_state
from lth.training import Segment, lr_at, train


def pick_device(requested: str = "auto") -> torch.device:
    """The GPU when one is visible (and not refused), the CPU otherwise."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise LTHError(f"device {requested}: no CUDA device is visible")
    return torch.device(requested)


class Context:
    """What the jobs of one experiment share in a process: the plan, the device, loaded datasets."""

    def __init__(self, plan: Plan, device: torch.device, track_uri: str | None = None):
        self.plan, self.device, self.track_uri = plan, device, track_uri
        self._splits: dict[str | None, Any] = {}

    def dataset(self, target: str | None = None):
        s = self.plan.settings
        return s.transfer.targets[target].dataset if target else s.dataset

    def splits(self, target: str | None = None):
        """A dataset's splits on the device; a transfer target's inputs adapted to the source model."""
        if target not in self._splits:
            from lth.datasets import load_splits

            d = self.dataset(target)
            self.check_pinned(tensors_file(self.plan.data_dir, d))
            splits = load_splits(d.name, self.plan.data_dir, val_size=d.val_size, split_seed=d.split_seed,
                                 options=d.options.thaw() or None, device=self.device, label_noise=d.label_noise)
            if target:
                from lth.transfer import adapt_splits

                splits = adapt_splits(splits, input_shape(self.plan.settings.dataset))
            self._splits[target] = splits
        return self._splits[target]

    def check_pinned(self, path: Path) -> None:
        """A dataset file has the bytes data.dvc pins, or else those it had when fetched (lth.pins)."""
        from lth import pins

        pinned = pins.load(self.plan.workflow["pins"]) if self.plan.workflow.get("pins") else None
        if path.is_file():
            pins.verify(path, self.plan.data_dir, pinned)

    def new_model(self, seed: int, target: str | None = None) -> torch.nn.Module:
        """The experiment's model, initialised from `seed`, with the output head of `target`'s classes."""
        from lth.models import build_model

        s = self.plan.settings
        return build_model(s.model.name, input_shape(s.dataset), num_classes(self.dataset(target)), seed=seed,
                           init=s.model.init, **s.model.options).to(self.device)

    def theta_0(self, seed: int) -> torch.nn.Module:
        """The dense run's starting network: the model initialised from `seed`, or the pre-trained
        network it starts from (model.pretrained, lth.pretrained)."""
        model = self.new_model(seed)
        if self.plan.settings.model.pretrained is not None:
            from lth.pretrained import load_into, weights_file

            load_into(model, weights_file(self.plan.layout.root, self.plan.settings, seed)[0], self.head(model))
        return model

    @staticmethod
    def head(model) -> str:
        from lth.models import output_layer_name

        return output_layer_name(model)

    def kinds(self, model) -> dict[str, str]:
        return masks.layer_kinds(model, self.plan.settings.pruning.exclude, self.plan.settings.pruning.biases)

    def augment(self, info) -> bool:
        return augments(self.plan.settings.training, info.name)

    @cache
    def provenance(self, target: str | None = None, fingerprint: str = "") -> dict[str, Any]:
        from lth.datasets import file_sha256

        return {"lth_version": lth.__version__, "torch_version": torch.__version__, "git_commit": git_commit(),
                "dataset_sha256": file_sha256(tensors_file(self.plan.data_dir, self.dataset(target))),
                "device": str(self.device), "threads": torch.get_num_threads(), "settings_fingerprint": fingerprint}

    # --- one run --------------------------------------------------------------------------------
    def train_run(self, job: Job, key: RunKey) -> dict[str, Any]:
        """Train run `key` from its start state, or return its record if it finished before."""
        done = finished(self.plan.layout, key)
        if done is not None:
            return done
        started, started_at = time.perf_counter(), time.time()
        start = start_state(self, key)
        if key.level == 0 and not key.target:  # theta_0: the rewind point k = 0 and the reinit reference
            artifacts.save_tensors(self.plan.layout.init(key.seed), start.model.state_dict())
        splits = self.splits(key.target)
        fp = self.plan.fingerprint(job)
        seg = self.segment(key, start, fp)
        how = self.plan.variant(key).train
        enforce = self.thresholding(key, start.model) if how == "iht" else None
        model, mask = (self.edge_popup(key, start.model), {}) if how == "edgepopup" else (start.model, start.mask)
        result = train(model, mask, splits, self.plan.settings.training, seg,
                       augment=self.augment(splits.info), enforce=enforce)
        if how == "edgepopup":  # the found subnetwork: the frozen weights under the top scores
            model, mask = model.ticket(), model.mask()
        elif how == "iht":
            mask = enforce.mask
        return self.finish(key, model, mask, result, self.provenance(key.target, fp), started, started_at)

    def segment(self, key: RunKey, start, fp: str) -> Segment:
        """What run `key` trains: from its start state's iteration to the end of the budget."""
        return Segment(start=start.iteration, stop=self.plan.settings.training.iterations, lr=start.lr,
                       data_seed=derive_seed(key.seed, "data", *([key.target] if key.target else [])),
                       checkpoint=self.plan.layout.checkpoint(key), fingerprint=f"{fp}/{key}", label=str(key))

    def finish(self, key: RunKey, model, mask, result, provenance, started: float, started_at: float):
        """Write a trained run (and log it, with live tracking); return its record."""
        record = write_run(self.plan.layout, key, model, mask, result, provenance, started, started_at)
        if self.track_uri:
            from lth.tracking import log_live

            log_live(self.track_uri, self.plan, key)
        return record

    def groups(self, keys: list[RunKey]) -> list[list[RunKey]]:
        """The runs of a job that train together (the workflow's `batching`, lth.batched): those that
        train under a fixed mask, in groups of at most `batching` in the job's order (a function of the
        config alone), less the runs finished before; [] when one at a time."""
        most = int(self.plan.workflow.get("batching", 1))
        if most < 2:
            return []
        from lth.batched import unsupported

        if unsupported(self.plan.settings.training):
            return []
        fixed = [k for k in keys if self.plan.variant(k).train == "masked"]
        chunks = [[k for k in fixed[i : i + most] if finished(self.plan.layout, k) is None]
                  for i in range(0, len(fixed), most)]
        return [c for c in chunks if len(c) > 1]

    def train_group(self, job: Job, keys: list[RunKey]) -> dict[RunKey, dict[str, Any]]:
        """Train runs `keys` of one job together (lth.batched.train_batched) and write each; on a CPU
        every run ends bitwise as it would alone. A run whose loss stopped being finite is reported
        by its key and left unwritten: the job then trains it alone, as without batching."""
        from lth.batched import train_batched

        started, started_at = time.perf_counter(), time.time()
        fp = self.plan.fingerprint(job)
        starts = [start_state(self, k) for k in keys]
        splits = self.splits(keys[0].target)
        name = hashlib.sha256("|".join(map(str, keys)).encode()).hexdigest()[:12]
        checkpoint = self.plan.layout.group_checkpoint(name, keys[0].target)
        results = train_batched([s.model for s in starts], [s.mask for s in starts], splits,
                                self.plan.settings.training, [self.segment(k, s, fp) for k, s in zip(keys, starts)],
                                keys=[str(k) for k in keys], checkpoint=checkpoint, fingerprint=f"{fp}/{name}",
                                augment=self.augment(splits.info))
        provenance = {**self.provenance(keys[0].target, fp), "batched": len(keys)}
        records = {}
        for key, start, result in zip(keys, starts, results):
            if result["diverged"]:
                print(f"lth: WARNING: {key}: loss not finite at iteration {result['diverged']['iteration']} in its "
                      f"group; the group's other runs are kept and this one trains alone", file=sys.stderr)
                continue
            records[key] = self.finish(key, start.model, start.mask, result, provenance, started, started_at)
        checkpoint.unlink(missing_ok=True)
        return records

    def thresholding(self, key: RunKey, model):
        """Iterative hard thresholding to run `key`'s density (a one-shot method with `train: iht`)."""
        from lth.iht import Projector

        m = self.plan.method(key)
        return Projector(model, list(self.kinds(model)), self.plan.density(key.level), m.iht.warmup, m.iht.ramp,
                         scope="global" if m.distribution == "global" else "layer")

    def edge_popup(self, key: RunKey, model):
        """Edge-popup at run `key`'s density: `model`'s weights frozen, a score per prunable weight
        trained instead (a one-shot method with `train: edgepopup`; lth.edgepopup)."""
        from lth.edgepopup import EdgePopup

        g = torch.Generator(device=self.device).manual_seed(derive_seed(key.seed, "scores", key.variant, key.level))
        return EdgePopup(model, list(self.kinds(model)), self.plan.density(key.level), g)

    # --- the jobs of the imp kind ---------------------------------------------------------------
    def run(self, job: Job) -> list[dict[str, Any]]:
        """Run `job`; return the records of the runs it trained (or had finished before).

        A job holds a lock while it runs: the same job started again meanwhile (a rerun after
        Snakemake was killed, whose jobs ran on) waits for it, then keeps what it finished.
        """
        job = job if job.runs else self.plan.with_runs(job)
        with exclusive(self.plan.layout.lock(f"{job.name}-{self.plan.fingerprint(job)}"), str(job)):
            return getattr(self, f"_{job.stage}")(job)

    def _dense(self, job: Job) -> list[dict[str, Any]]:
        return [self.train_run(job, key) for key in self.plan.job_runs(job)]

    def replay_dense(self, seed: int, stop: int, watch=None, label: str = ""):
        """The dense run replayed from theta_0 to iteration `stop`: the same batches and kernels, so, on a
        CPU at the same thread count, bitwise the weights the dense run had there (tested). `watch(model,
        mask)`, if given, makes the observer that sees every batch (lth.training.train's `observe`).
        Returns the model and the observer."""
        model = self.theta_0(seed)
        mask = masks.full_mask(model, self.plan.settings.pruning.exclude, self.plan.settings.pruning.biases)
        observer = watch(model, mask) if watch else None
        training = self.plan.settings.training
        seg = Segment(start=0, stop=stop, lr=lambda t: lr_at(training, t), data_seed=derive_seed(seed, "data"),
                      label=label)
        train(model, mask, self.splits(), training, seg, augment=self.augment(self.splits().info), observe=observer)
        return model, observer

    def _rewind(self, job: Job) -> list[dict[str, Any]]:
        """theta_k: the dense run replayed to iteration k."""
        model, _ = self.replay_dense(job.seed, job.k, label=str(job))
        artifacts.save_tensors(self.plan.layout.rewind(job.seed, job.k), model.state_dict())
        return []

    def prune(self, seed: int, level: int, chain: str) -> masks.Mask:
        """Level `level`'s mask of `chain`, by the plan's pruning rule (IMP: its previous level's trained
        weights pruned once more; a one-shot method: the weights it scores, pruned to a density)."""
        plan, head = self.plan, RunKey(seed, level, chain)
        weights_path, mask_path = plan.prune_inputs(head)
        weights = artifacts.load_tensors(weights_path)
        old = artifacts.load_tensors(mask_path)
        model = self.new_model(seed)
        masks.check_mask(model, old, str(mask_path))
        generator = lambda: torch.Generator().manual_seed(derive_seed(seed, "prune", chain, level))  # noqa: E731
        shape = input_shape(plan.settings.dataset)
        options = plan.pruning_options(head)
        observer = SCORES[options["score"]].info.get("observer")
        if observer:  # a score accumulated during training (BINGO)
            options = {**options, "significance": self.observe(head, observer, options)}

        def batch(n: int):
            x, y = self.splits().x_train, self.splits().y_train
            idx = torch.randperm(len(y), generator=generator())[:n].to(x.device)
            return x[idx], y[idx]

        def context_for(mask: masks.Mask) -> PruneContext:
            def masked_model():
                artifacts.load_weights(model, weights_path)
                masks.apply_mask(model, mask)
                return model

            return PruneContext(generator=generator, model=masked_model, batch=batch, input_shape=shape,
                                options=options)

        new = plan.next_mask(head, weights, old, self.kinds(model), context_for)
        artifacts.save_tensors(plan.layout.mask(head), new)
        return new

    def observe(self, head: RunKey, observer: str, options) -> dict:
        """Scores accumulated during training (BINGO): the dense run replayed from theta_0 over the same
        batches with the score's observer watching (it leaves the trajectory bitwise as it was), once
        per seed and method; the densities' jobs share the file, and a lock keeps it computed once."""
        path = self.plan.observed(head)
        with exclusive(self.plan.layout.lock(f"observe-{head.seed}-{path.stem}"), f"observe {head}"):
            if not path.exists():
                from lth.registry import Part

                def watch(model, mask):
                    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    return Part("observer", observer).load()(model, mask, seed=derive_seed(head.seed, "observe"),
                                                             init=init, **options[options["score"]])

                _, found = self.replay_dense(head.seed, self.plan.settings.training.iterations, watch,
                                             f"observe {head}")
                artifacts.save_tensors(path, found.scores())
        return artifacts.load_tensors(path)

    def _level(self, job: Job) -> list[dict[str, Any]]:
        """One pruning round of a chain for every seed: prune its mask (unless its head run finished
        under it before), then train the job's runs on it (the chain's head; kind oneshot: also its
        controls)."""
        for seed in job.seeds:
            head = RunKey(seed, job.level, job.chain)
            if self.plan.variant(head).train == "masked" and finished(self.plan.layout, head) is None:
                self.prune(seed, job.level, job.chain)
        return self._record(job)

    def _controls(self, job: Job) -> list[dict[str, Any]]:
        """A chain's controls (reinit, random_prune) of every seed at a few levels whose masks exist."""
        return self._record(job)

    def _probe(self, job: Job) -> list[dict[str, Any]]:
        """The runs an analysis trains for itself (lth.analyses)."""
        from lth.analyses import module

        return module(job.chain).train(self, job)

    def _transfer(self, job: Job) -> list[dict[str, Any]]:
        return self._record(job)

    def _record(self, job: Job) -> list[dict[str, Any]]:
        """Train the job's runs, then mark the job finished with the runs it holds."""
        keys = self.plan.job_runs(job)
        grouped = {}
        for group in self.groups(keys):
            grouped.update(self.train_group(job, group))
        records = [grouped.get(key) or self.train_run(job, key) for key in keys]
        root = self.plan.layout.root
        write_json(self.plan.outputs(job)[0], {str(k): str(self.plan.layout.metrics(k).relative_to(root)) for k in keys})
        return records


@contextmanager
def exclusive(path: Path, label: str):
    """Hold an exclusive lock on `path` (released when the process ends, however it ends)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            print(f"lth: {label} is already running (process {f.read().strip() or '?'}): waiting for it to finish",
                  file=sys.stderr, flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        yield


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
