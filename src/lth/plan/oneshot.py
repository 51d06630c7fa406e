"""The one-shot sweep (kind `oneshot`): for each density of a list and each method, prune once to
that density, then train the masked network for the budget. No torch.

A method (settings `oneshot.methods.<name>`) is a registered score, the weights it scores (`at`:
the start weights theta_k, the dense run's trained weights, or its own trained weights at the next
larger density: IMP with each round jumping to its density, as Greydanus 2020 prunes), a per-layer
distribution and a number of rounds; or a training mode that finds its mask while it trains
(lth.core.parts.TRAINING_MODES): iterative hard thresholding (`train: iht`), which reaches the
density while it trains, edge-popup (`train: edgepopup`), which keeps the weights of theta_k
frozen and trains which of them to keep (strong tickets), or gradual magnitude pruning, SET and
RigL (`train: gmp`, `set`, `rigl`), which prune from dense or evolve a random sparse mask. A method
with `n_of_m: [N, M]` keeps N of every M consecutive inputs of each row
(lth.pruning.select.keep_n_of_m): its density is N/M, so it runs at that one density of the sweep
(`method_levels`), and `distribution: channels` removes whole channels (lth.pruning.channels).
Every run starts from theta_k and trains T-k iterations, the ticket's budget. The controls of
Frankle et al. 2021 ("Pruning neural networks at initialization: why are we missing the mark?")
are variants of each method: `<method>-shuffle` (its mask shuffled within each layer, the
per-layer counts kept) and `<method>-reinit` (its mask on a fresh initialisation).

Jobs (the `imp` kind's stages, lth.plan.imp):
    dense   (seed)                 the dense run
    rewind  (seed, k)              theta_k for k > 0
    level   (level, chain)         chain = a method, level = the density in weights per 10,000
                                   (level 0500 keeps 5%): every seed's mask, run and controls
A level job waits only on the dense run (and theta_k), so the N densities of a method are N
independent jobs, except for a method `at: previous`, whose density waits on its next larger one.
A run's folder carries its method's fingerprint: changing one method's settings retrains only it.
The kind owns its config section (`config_keys`), its checks (`Sweep.check`) and its fingerprints
(`Sweep.stage_fingerprints`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from lth.core import parts
from lth.core.errors import LTHError
from lth.core.registry import load_target
from lth.plan.checks import check_data_score
from lth.plan.fingerprints import digest, score_keys
from lth.plan.imp import Plan
from lth.plan.job import Job
from lth.plan.layout import RunKey, tensors_file
from lth.plan.settings import Settings, thaw
from lth.plan.variants import DENSE, Variant

PER = 10000  # a level is a density in weights per PER (a one-shot density is a multiple of 1/PER: it names folders)
SCHEMA = Path(__file__).with_name("schemas") / "oneshot.schema.yaml"


@cache
def config_keys() -> dict[str, Any]:
    """The `oneshot` section (schemas/oneshot.schema.yaml), its methods' keys completed from the
    registered scores and training modes."""
    fragment = yaml.safe_load(SCHEMA.read_text())
    method = fragment["method"]
    method["properties"].update(parts.SCORES.keys_schema() | parts.TRAINING_MODES.keys_schema())
    method["properties"]["score"]["enum"] = list(parts.SCORES)
    method["properties"]["train"]["enum"] = list(parts.TRAINING_MODES)
    fragment["oneshot"]["properties"]["methods"]["additionalProperties"] = method
    return {"oneshot": fragment["oneshot"]}


def method_keys(s: Settings, m: Mapping[str, Any]) -> dict[str, Any]:
    """What a one-shot method's runs depend on: the keys its training mode declares (a mode that trains
    under a pruned mask: with its score's), and, for a method that prunes its own previous density's
    weights, the densities of that chain."""
    mode = parts.TRAINING_MODES[m["train"]]
    keys = [*mode.method_keys, *(score_keys(m) if mode.fixed_mask else ())]
    out = {k: thaw(m[k]) for k in keys}
    if m["at"] == "previous" and mode.fixed_mask:
        out["densities"] = sorted(s.oneshot.densities, reverse=True)
    if m.get("previous_iteration") is not None:  # only when set: the folders of earlier settings stay
        out["previous_iteration"] = m["previous_iteration"]
    if m.get("n_of_m") is not None:
        out["n_of_m"] = thaw(m["n_of_m"])
    return out


def n_of_m_level(m: Mapping[str, Any]) -> int | None:
    """The one level (density per PER) of a method with `n_of_m: [N, M]`: N/M; None without."""
    return round(m["n_of_m"][0] / m["n_of_m"][1] * PER) if m.get("n_of_m") else None


def check_n_of_m(m: dict[str, Any], s: Mapping[str, Any], at: str) -> None:
    """An N:M method: N below M, one round of a mask trained under (train: masked), not chained (at:
    previous), a distribution that is uniform per layer (N/M of every layer), biases not pruned, and its
    density N/M one of the sweep's densities (it runs at that one only). Its rounds default to 1."""
    n, mm = m["n_of_m"]
    key = f"{at}.n_of_m: [{n}, {mm}]"
    if n >= mm:
        raise LTHError(f"{key}: N must be below M (N of every M consecutive inputs are kept)")
    if not parts.TRAINING_MODES[m["train"]].fixed_mask:
        raise LTHError(f"{key}: train: {m['train']} finds its own mask while it trains; N:M masks need train: masked")
    if m["at"] == "previous":
        raise LTHError(f"{key}: an N:M method runs at the one density N/M: at: previous has no chain of densities "
                       f"to follow (use at: trained)")
    if m["distribution"] not in ("global", "uniform"):
        raise LTHError(f"{key}: N:M keeps N/M of every layer: distribution {m['distribution']!r} would contradict "
                       f"it (leave it global or set uniform)")
    if m["rounds"] is None:
        m["rounds"] = 1
    if m["rounds"] != 1:
        raise LTHError(f"{key}: N:M masks are chosen in one step; rounds: {m['rounds']} would leave groups with fewer "
                       f"than N (set rounds: 1)")
    if s["pruning"]["biases"]:
        raise LTHError(f"{key}: biases have no rows of inputs to group; set pruning.biases: false")
    level = n / mm * PER
    if abs(level - round(level)) > 1e-6:
        raise LTHError(f"{key}: its density {n}/{mm} is not a multiple of 0.0001 (levels name folders)")
    if not any(abs(d * PER - level) < 1e-6 for d in s["oneshot"]["densities"]):
        raise LTHError(f"{key}: the method runs at density {n / mm:g} only, which is not one of oneshot.densities "
                       f"{list(s['oneshot']['densities'])}: add it")


class Sweep(Plan):
    """The runs and jobs of a one-shot sweep (see the module docstring)."""

    def __init__(self, experiment, settings, root, workflow=None):
        super().__init__(experiment, settings, root, workflow)
        if settings.transfer.targets:
            raise LTHError(f"{experiment}: transfer: kind oneshot has no transfer stage; use kind imp")

    @staticmethod
    def check(s: dict[str, Any], where: str) -> None:
        """Densities strictly between 0 and 1 on a 1/10,000 grid (they name folders), methods whose
        scores get what they need, each method's rounds spelt out, and what its training mode takes."""
        o = s["oneshot"]
        for d in o["densities"]:
            if isinstance(d, bool) or not 0 < d < 1:
                raise LTHError(f"{where}: oneshot.densities: {d!r} is not a density in (0, 1) (the fraction of "
                               f"prunable weights kept: 0 keeps none, 1 prunes nothing)")
            if abs(d * PER - round(d * PER)) > 1e-6:
                raise LTHError(f"{where}: oneshot.densities: {d!r} is not a multiple of 0.0001")
        for name, m in o["methods"].items():
            at = f"{where}: oneshot.methods.{name}"
            check_data_score(m, at)
            if m["n_of_m"] is not None:
                check_n_of_m(m, s, at)
            if m["rounds"] is None:
                m["rounds"] = parts.SCORES[m["score"]].info.get("rounds", 1)
            if isinstance(m["at"], int) and m["at"] >= s["training"]["iterations"]:
                raise LTHError(f"{at}.at: iteration {m['at']} is beyond the training budget (training.iterations = "
                               f"{s['training']['iterations']})")
            if check := parts.TRAINING_MODES[m["train"]].info.get("check"):
                load_target(check)(m, s, at)
            if m["previous_iteration"] is not None and (m["at"] != "previous" or m["previous_iteration"]
                                                        >= s["training"]["iterations"]):
                raise LTHError(f"{at}.previous_iteration: {m['previous_iteration']} names an iteration of the "
                               f"previous density's run: it needs at: previous and an iteration below "
                               f"training.iterations = {s['training']['iterations']}")

    @staticmethod
    def stage_fingerprints(s: Settings, dense: str) -> dict[str, str]:
        """The pruned runs' folder: the dense fingerprint and the rewind point; each method's runs: its
        own keys ("method:<name>", in their folder names)."""
        imp = digest("oneshot", dense, s.rewind_iteration)
        return {"imp": imp, **{f"method:{name}": digest("method", imp, method_keys(s, m))
                               for name, m in s.oneshot.methods.items()}}

    @staticmethod
    def pruning_methods(s: Settings) -> list[Mapping[str, Any]]:
        """The methods that prune a mask (those that train under it)."""
        return list(Sweep.named_pruning_methods(s).values())

    @staticmethod
    def named_pruning_methods(s: Settings) -> dict[str, Mapping[str, Any]]:
        """The methods that prune a mask, by their config key."""
        return {f"oneshot.methods.{name}": m for name, m in s.oneshot.methods.items()
                if parts.TRAINING_MODES[m.train].fixed_mask}

    def levels(self) -> list[int]:
        """The densities as levels, densest first."""
        return sorted((round(d * PER) for d in self.settings.oneshot.densities), reverse=True)

    def method_levels(self, name: str) -> list[int]:
        """The levels method `name` runs at: every density, or N/M alone for an N:M method."""
        own = n_of_m_level(self.settings.oneshot.methods[name])
        return [lv for lv in self.levels() if own is None or lv == own]

    def ticket_chains(self) -> list[str]:
        """Every method's runs are its tickets."""
        return list(self.settings.oneshot.methods)

    def target_density(self, key: RunKey) -> float:
        """The density run `key` prunes to: its level, in weights per PER."""
        return key.level / PER

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
        train = self.method(key).train  # a mode that finds its mask while it trains starts from none
        fixed = parts.TRAINING_MODES[train].fixed_mask
        return Variant(key.variant, weights="rewind", mask="chain" if fixed else "full", chain=name, train=train)

    def transfer_levels(self) -> list[int]:
        return []

    def job_runs(self, job: Job) -> list[RunKey]:
        if job.stage != "level":
            return super().job_runs(job)
        controls = [f"{job.chain}-{c}" for c in self.settings.oneshot.controls]
        return [RunKey(seed, job.level, v) for seed in job.seeds for v in (job.chain, *controls)]

    def _plan_jobs(self, per_seed: bool = True) -> list[Job]:
        s, out = self.settings, []
        for seed in s.seeds:
            out.append(Job("dense", seed))
            out += [Job("rewind", seed, k=k) for k in self.replays()]
        groups = self.seed_groups() if per_seed else [tuple(s.seeds)]
        out += [self.with_runs(Job("level", seeds, level, chain)) for level in self.levels()
                for chain in s.oneshot.methods if level in self.method_levels(chain) for seeds in groups]
        return out

    def chain_length(self) -> int:
        """A method `at: previous` waits density on density; the others' densities are independent."""
        previous = any(m.at == "previous" and parts.TRAINING_MODES[m.train].fixed_mask
                       for m in self.settings.oneshot.methods.values())
        return len(self.levels()) if previous else 1

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
        L, method = self.layout, self.method(head)
        dense = RunKey(head.seed, 0, DENSE)
        if method.at == "init":
            return L.rewind(head.seed, self.settings.rewind_iteration), L.mask(dense)
        if isinstance(method.at, int):  # the dense run's weights at iteration `at`, replayed (a rewind job)
            return L.rewind(head.seed, method.at), L.mask(dense)
        source = self.previous(head) if method.at == "previous" else dense
        if method.at == "previous" and method.previous_iteration is not None:
            return L.snapshot(source, method.previous_iteration), L.mask(source)
        return L.final(source), L.mask(source)

    def snapshots(self, key: RunKey) -> list[int]:
        """The dense run keeps the weights every `previous_iteration` asks for (the first density prunes
        from them); a method's own runs (not its controls) keep its own."""
        if key.target or key.analysis:
            return []
        methods = self.settings.oneshot.methods
        if key.level == 0:
            return sorted({m.previous_iteration for m in methods.values() if m.previous_iteration is not None})
        own = methods.get(key.variant)
        return [own.previous_iteration] if own is not None and own.previous_iteration is not None else []

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
