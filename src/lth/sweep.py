"""The one-shot sweep (kind `oneshot`): for each density of a list and each method, prune once to
that density, then train the masked network for the budget. No torch.

A method (settings `oneshot.methods.<name>`) is a registered score, the weights it scores (`at`:
the start weights theta_k, the dense run's trained weights, or its own trained weights at the next
larger density: IMP with each round jumping to its density, as Greydanus 2020 prunes), a per-layer
distribution and a number of rounds; or iterative hard thresholding (`train: iht`), which reaches
the density while it trains; or edge-popup (`train: edgepopup`), which keeps the weights of theta_k
frozen and trains which of them to keep (strong tickets). Every run starts from theta_k and trains
T-k iterations, the ticket's budget. The controls of Frankle et al. 2021 ("Pruning neural networks
at initialization: why are we missing the mark?") are variants of each method: `<method>-shuffle`
(its mask shuffled within each layer, the per-layer counts kept) and `<method>-reinit` (its mask on
a fresh initialisation).

Jobs (the `imp` kind's stages, lth.plan):
    dense   (seed)                 the dense run
    rewind  (seed, k)              theta_k for k > 0
    level   (level, chain)         chain = a method, level = the density in weights per 10,000
                                   (level 0500 keeps 5%): every seed's mask, run and controls
A level job waits only on the dense run (and theta_k), so the N densities of a method are N
independent jobs, except for a method `at: previous`, whose density waits on its next larger one.
A run's folder carries its method's fingerprint: changing one method's settings retrains only it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from lth.errors import LTHError
from lth.layout import RunKey, tensors_file
from lth.plan import Job, Plan
from lth.settings import DENSITY_GRID
from lth.variants import DENSE, Variant

PER = DENSITY_GRID  # a level is a density in weights per PER


class Sweep(Plan):
    """The runs and jobs of a one-shot sweep (see the module docstring)."""

    def __init__(self, experiment, settings, root, workflow=None):
        super().__init__(experiment, settings, root, workflow)
        if settings.transfer.targets:
            raise LTHError(f"{experiment}: transfer: kind oneshot has no transfer stage; use kind imp")

    def levels(self) -> list[int]:
        """The densities as levels, densest first."""
        return sorted((round(d * PER) for d in self.settings.oneshot.densities), reverse=True)

    @staticmethod
    def density(level: int) -> float:
        return level / PER

    def method(self, key: RunKey):
        """The settings of the method that run `key` belongs to."""
        return self.settings.oneshot.methods[key.variant.split("-")[0]]

    def variant(self, key: RunKey) -> Variant:
        if key.level == 0 or key.target:
            return super().variant(key)
        name, _, control = key.variant.partition("-")
        if control == "shuffle":
            return Variant(key.variant, weights="rewind", mask="random", chain=name)
        if control == "reinit":
            return Variant(key.variant, weights="fresh", mask="chain", chain=name)
        train = self.method(key).train  # iht and edgepopup find their mask while they train
        return Variant(key.variant, weights="rewind", mask="chain" if train == "masked" else "full", chain=name,
                       train=train)

    def transfer_levels(self) -> list[int]:
        return []

    def job_runs(self, job: Job) -> list[RunKey]:
        if job.stage != "level":
            return super().job_runs(job)
        controls = [f"{job.chain}-{c}" for c in self.settings.oneshot.controls]
        return [RunKey(seed, job.level, v) for seed in job.seeds for v in (job.chain, *controls)]

    def _plan_jobs(self) -> list[Job]:
        s, out = self.settings, []
        for seed in s.seeds:
            out.append(Job("dense", seed))
            out += [Job("rewind", seed, k=k) for k in self.replays()]
        out += [self.with_runs(Job("level", tuple(s.seeds), level, chain)) for level in self.levels()
                for chain in s.oneshot.methods]
        return out

    def replays(self) -> list[int]:
        """The iterations of the dense run that are replayed: the rewind point, and those methods score."""
        ats = [m.at for m in self.settings.oneshot.methods.values() if isinstance(m.at, int)]
        return sorted({k for k in (self.settings.rewind_iteration, *ats) if k})

    def previous(self, key: RunKey) -> RunKey:
        """The run whose trained weights a method `at: previous` prunes: its next larger density."""
        levels = self.levels()
        i = levels.index(key.level)
        chain = self.variant(key).chain
        return RunKey(key.seed, 0, DENSE) if i == 0 else RunKey(key.seed, levels[i - 1], chain)

    def prune_inputs(self, head: RunKey) -> tuple[Path, Path]:
        L, at = self.layout, self.method(head).at
        dense = RunKey(head.seed, 0, DENSE)
        if at == "init":
            return L.rewind(head.seed, self.settings.rewind_iteration), L.mask(dense)
        if isinstance(at, int):  # the dense run's weights at iteration `at`, replayed (a rewind job)
            return L.rewind(head.seed, at), L.mask(dense)
        source = self.previous(head) if at == "previous" else dense
        return L.final(source), L.mask(source)

    def pruning_options(self, head: RunKey):
        return self.method(head)

    def observed(self, head: RunKey) -> Path:
        """Where the scores a method's observer accumulated during the dense run's replay are kept:
        one file per seed and method (its settings' fingerprint in the name), shared by its densities."""
        return self.layout.seed_dir(head.seed) / "observed" / f"{self.layout.variant_dir(head.variant)}.safetensors"

    def next_mask(self, head: RunKey, weights, mask, kinds, context_for):
        from lth.pruning import prune_to

        return prune_to(self.method(head), self.density(head.level), weights, mask, context_for)

    def inputs(self, job: Job) -> dict[str, list[Path]]:
        s, L = self.settings, self.layout
        if job.stage != "level":
            return super().inputs(job)
        runs = [L.metrics(RunKey(seed, 0, DENSE)) for seed in job.seeds]
        if s.rewind_iteration:
            runs += [L.rewind(seed, s.rewind_iteration) for seed in job.seeds]
        head = RunKey(job.seeds[0], job.level, job.chain)
        previous = self.previous(head)
        if self.method(head).at == "previous" and previous.level:
            runs.append(self.done(self.with_runs(replace(job, level=previous.level))))
        if isinstance(self.method(head).at, int):
            runs += [L.rewind(seed, self.method(head).at) for seed in job.seeds]
        return {"data": [tensors_file(self.data_dir, s.dataset)], "runs": runs}
