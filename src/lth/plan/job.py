"""A job: one Snakemake job, one process, and the runs it holds. Torch-free.

The stages (lth.plan.imp says what each does) and the files a finished job leaves (its Snakemake
outputs): the same code gives a real job's paths and the workflow's patterns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lth.core.errors import LTHError
from lth.plan.layout import Layout, RunKey, level_name
from lth.plan.variants import DENSE

STAGES = ("dense", "rewind", "level", "controls", "transfer", "probe")


GROUPED = ("level", "controls", "transfer")  # the stages whose jobs hold every seed


CONTROL_LEVELS = 4  # levels of a chain's controls in one controls job


@dataclass(frozen=True)
class Job:
    """One job: a Snakemake job, one process. Those of the GROUPED stages hold every seed."""

    stage: str
    seeds: tuple[int, ...]  # one seed may be given as an int
    level: int = 0
    chain: str = ""
    target: str = ""
    k: int = 0
    runs: str = ""  # GROUPED stages: the id of the runs they hold (Plan.with_runs)
    to: int = 0  # controls jobs: the last level they train (`level` the first)

    def __post_init__(self):
        if not isinstance(self.seeds, tuple):
            object.__setattr__(self, "seeds", (self.seeds,))

    @property
    def seed(self) -> int:
        """The seed of a one-seed job (dense, rewind, probe)."""
        if len(self.seeds) != 1:
            raise LTHError(f"job '{self}' holds {len(self.seeds)} seeds, not one")
        return self.seeds[0]

    @property
    def levels(self) -> list[int]:
        return list(range(self.level, self.to + 1)) if self.stage == "controls" else [self.level]

    def __str__(self) -> str:
        seeds = f"seed{'s' * (len(self.seeds) > 1)} {', '.join(map(str, self.seeds))}"
        return {"dense": f"dense {seeds}", "rewind": f"theta_k {seeds} k={self.k}",
                "level": f"{self.chain} chain level {self.level}, {seeds}",
                "controls": f"{self.chain} chain controls levels {self.level}-{self.to}, {seeds}",
                "transfer": f"transfer to {self.target} level {self.level}, {seeds}",
                "probe": f"{self.chain} {seeds} level {self.level} k={self.k}"}[self.stage]

    @property
    def name(self) -> str:
        """A file name for the job (its log, its marker): the same for a Snakemake pattern and a real job."""
        level, to = level_name(self.level), level_name(self.to)
        return {"dense": f"dense-seed{self.seeds[0]}", "rewind": f"rewind-seed{self.seeds[0]}-k{self.k}",
                "level": f"level{level}-{self.chain}-{self.runs}",
                "controls": f"controls{level}-{to}-{self.chain}-{self.runs}",
                "transfer": f"transfer-{self.target}-level{level}-{self.runs}",
                "probe": f"probe-{self.chain}-seed{self.seeds[0]}-level{level}-k{self.k}"}[self.stage]


def job_outputs(layout: Layout, job: Job) -> list[Path]:
    """What a finished job leaves (its Snakemake outputs; the first is written last)."""
    if job.stage == "dense":
        key = RunKey(job.seed, 0, DENSE)
        return [layout.metrics(key), layout.final(key), layout.mask(key), layout.init(job.seed)]
    if job.stage == "rewind":
        return [layout.rewind(job.seed, job.k)]
    if job.stage == "probe":  # chain: the analysis
        return [layout.analysis_record(job.chain, job.seed, job.level, job.k)]
    return [layout.job_record(job.name, job.target if job.stage == "transfer" else None)]


class _AnyFingerprint(dict):
    """Fingerprints for Snakemake patterns: the wildcard {fp} for every stage."""

    def __missing__(self, key):
        return "{fp}"


def patterns(root: str) -> dict[str, str | list[str]]:
        """The workflow's file patterns, from the same code as a plan's paths: each training stage's
        outputs (a list) and log, and the experiment's own files."""
        layout = Layout(Path(root), _AnyFingerprint(), "{kind}")
        out: dict[str, str | list[str]] = {}
        for stage in STAGES:
            job = Job(stage, "{seed}", "{level}", "{chain}", "{target}", "{k}", "{runs}", "{to}")
            out[stage] = [str(p) for p in job_outputs(layout, job)]
            kind = "-{kind}" if stage in ("level", "controls") else ""  # their folder is named by the kind
            out[f"{stage}_log"] = str(layout.log(f"{job.name}{kind}-{{fp}}"))
        out.update(settings=str(layout.settings), summary=str(layout.table("summary.csv")),
                   layer_density=str(layout.table("layer_density.csv")),
                   analysis=str(layout.table("analysis-{analysis}.csv")),
                   **{f"{step}_log": str(layout.log(step.replace("analysis", "analysis-{analysis}")))
                      for step in ("settings", "summary", "analysis", "report", "track", "tracking_store")})
        return out
