"""The plan: the one list of an experiment's runs, which jobs train them, what each job reads. No torch.

The Snakefile's input functions and every `lth` command ask a plan; nothing else enumerates runs
or spells a path (paths come from `lth.plan.layout`). A plan is made from resolved settings and
written once to results/<experiment>/settings.json; jobs read it back from there
(`Plan.from_results`), so nothing is sent twice on a command line.

Jobs of the `imp` kind (iterative magnitude pruning):
    dense     (seed)              the dense run, level 0
    rewind    (seed, k)           theta_k for k > 0: the dense run replayed to iteration k, so that
                                  a new rewind point never retrains the dense network
    level     (level, chain)      every seed's chain: prune its previous level, train its head run
                                  (the ticket), the runs the next level prunes
    controls  (levels, chain)     the chain's other variants (reinit, random_prune) of every seed at
                                  CONTROL_LEVELS consecutive levels: off the chain's critical path
    transfer  (target, level)     every seed's transfer runs of one source level (0: the dense
                                  network) on one target dataset: each waits only on its level
The runs of a level, controls or transfer job train together (lth.training.batched, up to the workflow's
`batching` in one step). Such a job's marker is named by the id of the runs it holds: a new seed,
variant or level makes new jobs, which train only the runs not finished yet, and Snakemake, which
deletes a job's outputs before running it, never deletes a run (they are not outputs).

`Plan` is the `imp` kind (lth.core.parts.EXPERIMENT_KINDS) and the base of the others: a kind is a
subclass with its own runs and jobs, its `check` of the settings and its `stage_fingerprints`.
Analyses that train runs of their own add their jobs through their registered hooks
(lth.core.parts.ANALYSES: `jobs`, `inputs`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from lth.core import parts
from lth.core.errors import LTHError
from lth.core.files import read_json, write_json
from lth.plan.fingerprints import defaults, diff, digest, fingerprints, score_keys
from lth.plan.job import CONTROL_LEVELS, GROUPED, Job, job_outputs
from lth.plan.layout import Layout, RunKey, tensors_file
from lth.plan.settings import Settings, resolve
from lth.plan.variants import DENSE, DENSE_RUN, SOURCE, TRANSFER, Variant, chains

FORMAT = 2  # of settings.json; 1 (no "format" key) was the layout seed<S>/level<LL>/<variant>/


class Plan:
    """The runs and jobs of one experiment of the `imp` kind (see the module docstring)."""

    def __init__(self, experiment: str, settings: Settings, root: str | Path, workflow: dict[str, Any] | None = None):
        self.experiment, self.settings = experiment, settings
        self.workflow = dict(workflow or {})  # data_dir, device, pins, tracking_uri, live_tracking
        self.layout = Layout(Path(root), fingerprints(settings), settings.kind)

    # --- the kind's hooks (lth.core.parts.EXPERIMENT_KINDS) ------------------------------------------
    @staticmethod
    def check(s: dict[str, Any], where: str) -> None:
        """The kind's own checks of raw settings (lth.plan.checks calls it): IMP has none beyond the rest."""

    @staticmethod
    def stage_fingerprints(s: Settings, dense: str) -> dict[str, str]:
        """The pruned runs' folder ("imp"): the dense fingerprint, the rewind point and the pruning method
        (its score and strategy with the keys they declare; not how many levels)."""
        d = defaults()
        method = ("score", "strategy", *parts.SELECTIONS[s.pruning.strategy].config_keys(), *score_keys(s.pruning))
        return {"imp": digest("imp", dense, s.kind, s.rewind_iteration,
                              diff({k: s.pruning[k] for k in method}, {k: d.pruning[k] for k in method}))}

    @staticmethod
    def pruning_methods(s: Settings) -> list[Mapping[str, Any]]:
        """The settings of every pruning method that makes a mask (IMP: `pruning`)."""
        return [s.pruning]

    @staticmethod
    def named_pruning_methods(s: Settings) -> dict[str, Mapping[str, Any]]:
        """The same, by the config key that holds each (what an error names)."""
        return {"pruning": s.pruning}

    def method_levels(self, chain: str) -> list[int]:
        """The levels at which chain `chain` has a mask (IMP: every level)."""
        return self.levels()

    # --- settings.json ------------------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        return {"format": FORMAT, "experiment": self.experiment, "settings": self.settings.thaw(),
                "fingerprints": self.layout.fingerprints, "workflow": self.workflow}

    def write(self) -> Path:
        """Record the plan in its results folder, replacing an older plan of the same format."""
        check_results_folder(self.layout.root, self.recorded())
        write_json(self.layout.settings, self.record())
        return self.layout.settings

    def recorded(self) -> Any:
        """What the results folder's settings.json holds now (None if it has none)."""
        return read_json(self.layout.settings) if self.layout.settings.exists() else None

    @classmethod
    def from_results(cls, root: str | Path) -> Plan:
        """The plan recorded in a results folder (what every job and command reads)."""
        path = Layout(Path(root)).settings
        if not path.exists():
            raise LTHError(f"{path}: not found: the workflow writes it (rule settings) before any job, "
                           f"and `lth train` by hand")
        rec = read_json(path)
        check_results_folder(root, rec)
        if not isinstance(rec.get("experiment"), str) or not isinstance(rec.get("settings"), dict):
            raise LTHError(f"{path}: damaged (no experiment name or settings): run the workflow again, which "
                           f"writes it anew")
        return plan_of(rec["experiment"], rec["settings"], root, rec.get("workflow"), where=str(path))

    @property
    def data_dir(self) -> Path:
        return Path(self.workflow.get("data_dir", "data"))

    # --- runs -----------------------------------------------------------------------------------
    def variant(self, key: RunKey) -> Variant:
        if key.target:
            return TRANSFER[key.variant]
        return DENSE_RUN if key.level == 0 else SOURCE[key.variant]

    def levels(self) -> list[int]:
        """The pruned levels, densest first (IMP: its rounds)."""
        return list(range(1, self.settings.pruning.levels + 1))

    def ticket_chains(self) -> list[str]:
        """The chains whose heads are the experiment's tickets (IMP: the ticket chain)."""
        return ["ticket"]

    def transfer_levels(self) -> list[int]:
        """Levels of a transfer job: 0 (the dense network) and the source levels transferred."""
        s = self.settings
        if not s.transfer.targets:
            return []
        return [0, *(s.transfer.levels or range(1, s.pruning.levels + 1))]

    def job_runs(self, job: Job) -> list[RunKey]:
        s = self.settings
        if job.stage == "dense":
            return [RunKey(job.seed, 0, DENSE)]
        if job.stage == "level":
            return [RunKey(seed, job.level, job.chain) for seed in job.seeds]
        if job.stage == "controls":
            return [RunKey(seed, level, v) for level in job.levels for seed in job.seeds
                    for v in self.controls(job.chain)]
        if job.stage == "transfer":
            return [RunKey(seed, job.level, v, job.target) for seed in job.seeds
                    for v in s.transfer.variants if (v == DENSE) == (job.level == 0)]
        return []

    def controls(self, chain: str) -> list[str]:
        """The variants a chain's controls jobs train: those of its level jobs but its head."""
        return [v for v in chains(self.settings.variants)[chain] if v != chain]

    def runs(self) -> list[RunKey]:
        """Every run, in table order: per seed the dense run, each level's variants (in the variants'
        table order), then the transfers."""
        keys = [key for job in self.jobs() for key in self.job_runs(job)]
        first: dict[tuple, int] = {}
        for i, key in enumerate(keys):
            first.setdefault((key.target, key.level), i)
        order = {v: i for i, v in enumerate(v for vs in chains(self.settings.variants).values() for v in vs)}
        return sorted(keys, key=lambda k: (k.seed, first[k.target, k.level], 0 if k.target else order.get(k.variant, 0)))

    def holding(self, key: RunKey) -> Job:
        """The planned job that trains run `key` (LTHError if none does)."""
        for job in self.jobs():
            if key in self.job_runs(job):
                return job
        raise LTHError(f"{self.experiment}: no run '{key}' in the plan of {self.layout.settings}")

    def previous(self, key: RunKey) -> RunKey:
        """The run whose trained weights level `key.level` of its chain prunes (and starts from)."""
        chain = self.variant(key).chain
        return RunKey(key.seed, 0, DENSE) if key.level == 1 else RunKey(key.seed, key.level - 1, chain)

    # --- pruning (the level job's first step) -----------------------------------------------------
    def prune_inputs(self, head: RunKey) -> tuple[Path, Path]:
        """The weights and the mask the level of chain head `head` prunes: its previous level's."""
        previous = self.previous(head)
        return self.layout.final(previous), self.layout.mask(previous)

    def method(self, key: RunKey):
        """The settings of the pruning method run `key` belongs to (IMP: `pruning`; what its score reads)."""
        return self.settings.pruning

    def snapshots(self, key: RunKey) -> list[int]:
        """The iterations at which run `key` keeps a copy of its weights, for a later pruning step to
        score (IMP: none; it scores the trained weights)."""
        return []

    def target_density(self, key: RunKey) -> float | None:
        """The density run `key` is pruned to, if a target (IMP: none; each round removes its rates of
        what remains)."""
        return None

    def observed(self, head: RunKey) -> Path:
        """Where the scores a method's observer accumulated during the dense run's replay are kept (BINGO):
        one file per seed and method (a one-shot method's fingerprint in its name), shared by its levels."""
        return self.layout.seed_dir(head.seed) / "observed" / f"{self.layout.variant_dir(head.variant)}.safetensors"

    def chain_mask(self, key: RunKey) -> RunKey:
        """The run whose mask is `key`'s chain mask: its chain's head (a transfer: the source ticket)."""
        return RunKey(key.seed, key.level, "ticket" if key.target else self.variant(key).chain)

    # --- jobs -----------------------------------------------------------------------------------
    def jobs(self) -> list[Job]:
        """Every job: each seed's dense (and rewind) job, then the level, controls and transfer jobs of
        every seed (computed once: the settings are immutable)."""
        if "_jobs" not in self.__dict__:
            self._jobs = self._plan_jobs()
        return self._jobs

    def _plan_jobs(self, per_seed: bool = True) -> list[Job]:
        """The jobs; `per_seed` False: every seed in one job (what `seeds_per_job` counts runs with)."""
        s, out, top = self.settings, [], self.settings.pruning.levels
        for seed in s.seeds:
            out.append(Job("dense", seed))
            if s.rewind_iteration:
                out.append(Job("rewind", seed, k=s.rewind_iteration))
        groups = self.seed_groups() if per_seed else [tuple(s.seeds)]
        out += [Job("level", seeds, level, chain) for level in range(1, top + 1) for chain in chains(s.variants)
                for seeds in groups]
        out += [Job("controls", seeds, first, chain, to=min(first + CONTROL_LEVELS - 1, top))
                for chain in chains(s.variants) if self.controls(chain) for first in range(1, top + 1, CONTROL_LEVELS)
                for seeds in groups]
        out += [Job("transfer", seeds, level, target=t) for t in s.transfer.targets for level in self.transfer_levels()
                for seeds in groups]
        return [self.with_runs(job) for job in out]

    def seed_groups(self) -> list[tuple[int, ...]]:
        """The seeds that share each level, controls and transfer job, `seeds_per_job` at a time."""
        seeds = tuple(self.settings.seeds)
        per = self.seeds_per_job()
        return [seeds[i : i + per] for i in range(0, len(seeds), per)]

    def seeds_per_job(self) -> int:
        """How many seeds a level, controls or transfer job holds.

        With `batching` (the workflow's), as many as train together: the same on every machine, so a
        batched run's bits never depend on where it ran. Without, one job trains its runs one after
        another, and the count trades process start-ups (few jobs) against the chain's critical path
        (one seed a job): the most seeds whose chain (levels x seeds runs) stays within half of the
        experiment's runs spread over the training jobs that run at once (the workflow's
        `parallel_jobs`: Snakemake's cores over threads, the GPU slots, or a cluster's jobs):
        ceil(runs / (2 x parallel x levels)). benchmarks/critical_path.py measures the trade; every
        seed in one job when the workflow does not say."""
        seeds = len(self.settings.seeds)
        batching = int(self.workflow.get("batching", 1))
        if batching > 1:
            return min(seeds, batching)
        parallel = self.workflow.get("parallel_jobs")
        if not parallel:
            return seeds
        runs = sum(len(self.job_runs(job)) for job in self._plan_jobs(per_seed=False))
        return max(1, min(seeds, math.ceil(runs / (2 * int(parallel) * max(1, self.chain_length())))))

    def chain_length(self) -> int:
        """The most jobs of one chain that wait one on another (IMP: its levels)."""
        return self.settings.pruning.levels

    def group_of(self, seed: int) -> tuple[int, ...]:
        return next(group for group in self.seed_groups() if seed in group)

    def probes(self, analysis: str | None = None) -> list[Job]:
        """The jobs that train the runs the configured analyses need (all, or those of `analysis`),
        with the theta_k replays they read beyond the experiment's own."""
        if "_probes" not in self.__dict__:
            self._probes = []
            for name in self.settings.analyses:
                if parts.ANALYSES[name].info.get("trains"):
                    self._probes += [j for j in parts.ANALYSES[name].hook("jobs")(self)
                                     if j not in self._probes and j not in self.jobs()]
        return [j for j in self._probes if analysis is None or j.chain == analysis or j.stage == "rewind"]

    def with_runs(self, job: Job) -> Job:
        """The job with the id of the runs it holds: a level, controls or transfer job whose runs change
        (a seed, variant or level added) is a new job, and its finished runs are kept."""
        if job.stage not in GROUPED:
            return job
        rel = sorted(str(self.layout.run_dir(k).relative_to(self.layout.root)) for k in self.job_runs(job))
        return replace(job, runs=hashlib.sha256("\n".join(rel).encode()).hexdigest()[:8])

    def done(self, job: Job) -> Path:
        """The marker that says `job`'s runs are finished: its own, or that of an earlier job of the same
        stage, chain and first level that held them all and more (runs were removed from the config
        since, e.g. a seed or the last levels of a controls block: nothing to run again)."""
        own = self.outputs(job)[0]
        if own.exists() or job.stage not in GROUPED:
            return own
        needed = {str(self.layout.metrics(k).relative_to(self.layout.root)) for k in self.job_runs(job)}
        for marker in self.markers(job):
            try:
                if needed <= set(read_json(marker).values()):
                    return marker
            except (LTHError, AttributeError):
                continue
        return own

    def markers(self, job: Job) -> list[Path]:
        """The markers of a GROUPED job and of the earlier jobs of its stage, chain (or target) and
        first level, whatever runs they held: those that may cover it (`done`)."""
        return sorted(self.outputs(job)[0].parent.glob(replace(job, runs="*", to="*").name + ".json"))

    def job(self, stage: str, seed: int | None = None, level: int = 0, chain: str = "", target: str = "",
            k: int = 0, fingerprint: str | None = None, runs: str = "", to: int = 0) -> Job:
        """The planned job with this key: a GROUPED stage's is the one holding `seed` (or, without one,
        the one of the runs `runs` names, or the only one); LTHError if the plan has none (or other
        settings' fingerprint). `runs` may also name an earlier job's marker that covers this job's runs
        (see `done`), or one that Snakemake deleted to rerun that job (its inputs changed): the job then
        writes that marker again, for the runs it holds now (`covered`)."""
        if seed is not None and int(seed) not in self.settings.seeds:
            raise LTHError(f"{self.experiment}: seed {seed} is not one of the plan's seeds {list(self.settings.seeds)}")
        if seed is None and stage not in GROUPED:
            raise LTHError(f"{self.experiment}: a {stage} job is of one seed: give it")
        key = (stage, int(level), chain, target, int(k), int(to))
        candidates = [j for j in self.jobs() + self.probes() if (j.stage, j.level, j.chain, j.target, j.k, j.to) == key
                      and (seed is None or int(seed) in j.seeds)]
        if not candidates:
            wanted = Job(stage, self.group_of(int(seed)) if seed is not None and stage in GROUPED else
                         (int(seed) if seed is not None else tuple(self.settings.seeds)), *key[1:5], to=key[5])
            raise LTHError(f"{self.experiment}: no job '{wanted}' in the plan of {self.layout.settings}")
        named = [j for j in candidates if j.runs == runs]
        if named or not runs:
            if len(named or candidates) > 1:
                raise LTHError(f"{self.experiment}: {len(candidates)} {stage} jobs of level {level} hold different "
                               f"seeds: name one with --seed (or --runs)")
            job = (named or candidates)[0]
        else:
            job = replace(self.covered(candidates, runs), runs=runs)
        stage_fp = self.fingerprint(job)
        if fingerprint is not None and fingerprint != stage_fp:
            raise LTHError(f"{self.experiment}: job '{job}' is for settings of fingerprint {fingerprint}, but the "
                           f"experiment's settings now give {stage_fp}: that folder holds runs of other settings")
        return job

    def fingerprint(self, job: Job) -> str:
        """The fingerprint of the settings a job's artifacts depend on (the one in its folder's name)."""
        if job.stage == "probe":
            return self.layout.fingerprints[f"analysis:{job.chain}"]
        stage = f"transfer:{job.target}" if job.target else ("dense" if job.stage in ("dense", "rewind") else "imp")
        return self.layout.fingerprints[stage]

    def outputs(self, job: Job) -> list[Path]:
        return job_outputs(self.layout, job)

    def inputs(self, job: Job) -> dict[str, list[Path]]:
        """What a job reads, by role: `data` (dataset files), `runs` (finished jobs' outputs)."""
        s, L = self.settings, self.layout
        data = [tensors_file(self.data_dir, s.dataset)]
        if job.stage in ("dense", "rewind"):
            if s.model.pretrained is None:
                return {"data": data, "runs": []}
            from lth.plan.pretrained import weights_file

            return {"data": data, "runs": [weights_file(L.root, s, job.seed)[1]]}
        if job.stage == "probe":
            return {"data": data, "runs": parts.ANALYSES[job.chain].hook("inputs")(self, job)}
        rewinds = any(self.variant(k).weights == "rewind" for k in self.job_runs(job))
        theta_k = [L.rewind(seed, s.rewind_iteration) for seed in job.seeds] if s.rewind_iteration else []
        if job.stage == "level":
            previous = ([L.metrics(RunKey(seed, 0, DENSE)) for seed in job.seeds] if job.level == 1
                        else [self.level_done(job.level - 1, job.chain, job.seeds)])
            return {"data": data, "runs": previous + (theta_k if rewinds else [])}
        if job.stage == "controls":  # the masks of its levels
            return {"data": data, "runs": [self.level_done(level, job.chain, job.seeds) for level in job.levels]
                    + (theta_k if rewinds else [])}
        target = tensors_file(self.data_dir, s.transfer.targets[job.target].dataset)
        dense = [L.metrics(RunKey(seed, 0, DENSE)) for seed in job.seeds]
        tickets = [self.level_done(job.level, "ticket", job.seeds)] if job.level else []
        return {"data": data + [target], "runs": [*dense, *theta_k, *tickets]}

    def covered(self, candidates: list[Job], runs: str) -> Job:
        """The job an earlier marker named `runs` stands for among `candidates` (jobs of one stage,
        chain and level): the one it covers (`done`); if Snakemake deleted it to rerun it, the seeds of
        the candidates whose runs are all finished (it covered finished runs), else of all of them."""
        marker = self.outputs(replace(candidates[0], runs=runs))[0]
        if marker.exists():
            for job in candidates:
                if self.done(job) == marker:
                    return job
            raise LTHError(f"{self.experiment}: job '{candidates[0]}' holds runs {candidates[0].runs}, not {runs}")
        done = [j for j in candidates if all(self.layout.metrics(k).exists() for k in self.job_runs(j))] or candidates
        return self.with_runs(replace(candidates[0], seeds=tuple(sorted(s for j in done for s in j.seeds))))

    def level_done(self, level: int, chain: str, seeds: tuple[int, ...]) -> Path:
        """The marker of the level job of `chain` at `level` that holds `seeds` (its masks and head runs
        are finished)."""
        return self.done(self.with_runs(Job("level", self.group_of(seeds[0]), level, chain)))

    def targets(self) -> list[Path]:
        """The outputs of every job: what the summary waits for."""
        return [self.done(job) for job in self.jobs()]


def check_results_folder(root: str | Path, record: Any = None) -> None:
    """Refuse a results folder written by the earlier layout: its runs are not keyed by fingerprints.
    `record`: its settings.json, when the caller has read it already."""
    path = Layout(Path(root)).settings
    if record is None:
        if not path.exists():
            return
        record = read_json(path)
    if not isinstance(record, dict):
        raise LTHError(f"{path}: damaged (not a mapping): delete it and run the workflow again, which writes it anew")
    if record.get("format") != FORMAT:
        raise LTHError(f"{root} holds results of an earlier version of lth (folders seed<S>/level<LL>/, not keyed "
                       f"by settings fingerprints) that this version cannot extend: move or delete {root}, "
                       f"or use another experiment name")


def plan_of(experiment: str, raw: dict[str, Any], root: str | Path, workflow: dict[str, Any] | None = None,
            where: str = "settings") -> Plan:
    """The plan of a raw experiment config, for its kind (lth.core.parts.EXPERIMENT_KINDS)."""
    settings = resolve(raw, where=where)
    return parts.EXPERIMENT_KINDS[settings.kind].load()(experiment, settings, root, workflow)

