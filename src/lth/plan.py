"""The plan: the one list of an experiment's runs, which jobs train them, what each job reads. No torch.

The Snakefile's input functions and every `lth` command ask a plan; nothing else enumerates runs
or spells a path (paths come from `lth.layout`). A plan is made from resolved settings and
written once to results/<experiment>/settings.json; jobs read it back from there
(`Plan.from_results`), so nothing is sent twice on a command line.

Jobs of the `imp` kind (iterative magnitude pruning):
    dense     (seed)              the dense run, level 0
    rewind    (seed, k)           theta_k for k > 0: the dense run replayed to iteration k, so that
                                  a new rewind point never retrains the dense network
    level     (seed, level, chain) prune the chain's previous level, train the chain's variants
    transfer  (seed, target)      the ticket's transfer runs on one target dataset
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lth import parts
from lth.errors import LTHError
from lth.files import read_json, write_json
from lth.layout import Layout, RunKey, tensors_file
from lth.settings import Settings, fingerprints, resolve
from lth.variants import DENSE, DENSE_RUN, SOURCE, TRANSFER, Variant, chains

FORMAT = 2  # of settings.json; 1 (no "format" key) was the layout seed<S>/level<LL>/<variant>/


@dataclass(frozen=True)
class Job:
    stage: str
    seed: int
    level: int = 0
    chain: str = ""
    target: str = ""
    k: int = 0

    def __str__(self) -> str:
        extra = [f"level {self.level}" if self.level else "", self.chain, f"on {self.target}" if self.target else "",
                 f"k={self.k}" if self.k else ""]
        return " ".join([self.stage, f"seed {self.seed}", *filter(None, extra)])


class _Wildcards(dict):
    def __missing__(self, key):
        return "{fp}"


class Plan:
    """The runs and jobs of one experiment of the `imp` kind (see the module docstring)."""

    def __init__(self, experiment: str, settings: Settings, root: str | Path, workflow: dict[str, Any] | None = None):
        self.experiment, self.settings = experiment, settings
        self.workflow = dict(workflow or {})  # data_dir, device, pins, tracking_uri, live_tracking
        self.layout = Layout(Path(root), fingerprints(settings))

    # --- settings.json ------------------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        return {"format": FORMAT, "experiment": self.experiment, "settings": self.settings.thaw(),
                "fingerprints": self.layout.fingerprints, "workflow": self.workflow}

    def write(self) -> Path:
        """Record the plan in its results folder, replacing an older plan of the same format."""
        check_results_folder(self.layout.root)
        write_json(self.layout.settings, self.record())
        return self.layout.settings

    @classmethod
    def from_results(cls, root: str | Path) -> Plan:
        """The plan recorded in a results folder (what every job and command reads)."""
        path = Path(root) / "settings.json"
        check_results_folder(root)
        if not path.exists():
            raise LTHError(f"{path}: not found: the workflow writes it (rule settings) before any job")
        rec = read_json(path)
        return plan_of(rec["experiment"], rec["settings"], root, rec.get("workflow"), where=str(path))

    @property
    def data_dir(self) -> Path:
        return Path(self.workflow.get("data_dir", "data"))

    # --- runs -----------------------------------------------------------------------------------
    def variant(self, key: RunKey) -> Variant:
        if key.target:
            return TRANSFER[key.variant]
        return DENSE_RUN if key.level == 0 else SOURCE[key.variant]

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
            return [RunKey(job.seed, job.level, v) for v in chains(s.variants)[job.chain]]
        if job.stage == "transfer":
            return [RunKey(job.seed, level, v, job.target) for level in self.transfer_levels()
                    for v in s.transfer.variants if (v == DENSE) == (level == 0)]
        return []

    def runs(self) -> list[RunKey]:
        """Every run, in table order: per seed the dense run, each level's variants, then transfers."""
        return [key for job in self.jobs() for key in self.job_runs(job)]

    def previous(self, key: RunKey) -> RunKey:
        """The run whose trained weights level `key.level` of its chain prunes (and starts from)."""
        chain = self.variant(key).chain
        return RunKey(key.seed, 0, DENSE) if key.level == 1 else RunKey(key.seed, key.level - 1, chain)

    def chain_mask(self, key: RunKey) -> RunKey:
        """The run whose mask is `key`'s chain mask: its chain's head (a transfer: the source ticket)."""
        return RunKey(key.seed, key.level, "ticket" if key.target else self.variant(key).chain)

    # --- jobs -----------------------------------------------------------------------------------
    def jobs(self) -> list[Job]:
        s, out = self.settings, []
        for seed in s.seeds:
            out.append(Job("dense", seed))
            if s.rewind_iteration:
                out.append(Job("rewind", seed, k=s.rewind_iteration))
            out += [Job("level", seed, level, chain) for level in range(1, s.pruning.levels + 1)
                    for chain in chains(s.variants)]
            out += [Job("transfer", seed, target=t) for t in s.transfer.targets]
        return out

    def job(self, stage: str, seed: int, level: int = 0, chain: str = "", target: str = "", k: int = 0,
            fingerprint: str | None = None) -> Job:
        """The planned job with this key; LTHError if the plan has none (or other settings' fingerprint)."""
        job = Job(stage, int(seed), int(level), chain, target, int(k))
        if job not in self.jobs():
            raise LTHError(f"{self.experiment}: no job '{job}' in the plan of {self.layout.settings}")
        stage_fp = self.fingerprint(job)
        if fingerprint is not None and fingerprint != stage_fp:
            raise LTHError(f"{self.experiment}: job '{job}' asks for fingerprint {fingerprint}, but "
                           f"{self.layout.settings} gives {stage_fp}: the settings changed; run the workflow again")
        return job

    def fingerprint(self, job: Job) -> str:
        """The fingerprint of the settings a job's artifacts depend on (the one in its folder's name)."""
        stage = f"transfer:{job.target}" if job.target else ("dense" if job.stage in ("dense", "rewind") else "imp")
        return self.layout.fingerprints[stage]

    def outputs(self, job: Job) -> list[Path]:
        """What a finished job leaves (Snakemake's outputs; the first is written last)."""
        L = self.layout
        if job.stage == "dense":
            key = RunKey(job.seed, 0, DENSE)
            return [L.metrics(key), L.final(key), L.mask(key), L.init(job.seed)]
        if job.stage == "rewind":
            return [L.rewind(job.seed, job.k)]
        if job.stage == "level":
            return [L.level_record(job.seed, job.level, job.chain)]
        return [L.transfer_record(job.seed, job.target)]

    def inputs(self, job: Job) -> dict[str, list[Path]]:
        """What a job reads, by role: `data` (dataset files), `runs` (finished jobs' outputs)."""
        s, L = self.settings, self.layout
        data = [tensors_file(self.data_dir, s.dataset)]
        dense = L.metrics(RunKey(job.seed, 0, DENSE))
        theta_k = [L.rewind(job.seed, s.rewind_iteration)] if s.rewind_iteration else []
        if job.stage in ("dense", "rewind"):
            return {"data": data, "runs": []}
        if job.stage == "level":
            previous = dense if job.level == 1 else L.level_record(job.seed, job.level - 1, job.chain)
            uses_rewind = any(self.variant(k).weights == "rewind" for k in self.job_runs(job))
            return {"data": data, "runs": [previous] + (theta_k if uses_rewind else [])}
        target = tensors_file(self.data_dir, s.transfer.targets[job.target].dataset)
        tickets = [L.level_record(job.seed, level, "ticket") for level in self.transfer_levels()[1:]]
        return {"data": data + [target], "runs": [dense, *theta_k, *tickets]}

    def targets(self) -> list[Path]:
        """The outputs of every job: what the summary waits for."""
        return [path for job in self.jobs() for path in self.outputs(job)[:1]]

    @staticmethod
    def patterns(root: str) -> dict[str, list[str]]:
        """Each stage's outputs as Snakemake patterns, from the same code as `outputs`."""
        wild = Plan.__new__(Plan)
        wild.layout = Layout(Path(root), _Wildcards())
        job = dict(seed="{seed}", level="{level}", chain="{chain}", target="{target}", k="{k}")
        return {stage: [str(p) for p in wild.outputs(Job(stage, **job))] for stage in ("dense", "rewind", "level",
                                                                                      "transfer")}


def check_results_folder(root: str | Path) -> None:
    """Refuse a results folder written by the earlier layout: its runs are not keyed by fingerprints."""
    path = Path(root) / "settings.json"
    if path.exists() and read_json(path).get("format") != FORMAT:
        raise LTHError(f"{root} holds results of an earlier version of lth (folders seed<S>/level<LL>/, not keyed "
                       f"by settings fingerprints) that this version cannot extend: move or delete {root}, "
                       f"or use another experiment name")


def plan_of(experiment: str, raw: dict[str, Any], root: str | Path, workflow: dict[str, Any] | None = None,
            where: str = "settings") -> Plan:
    """The plan of a raw experiment config, for its kind (lth.parts.KINDS)."""
    settings = resolve(raw, where=where)
    return parts.KINDS[settings.kind].load()(experiment, settings, root, workflow)

