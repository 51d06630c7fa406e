# lth: the lottery-ticket DAG. `snakemake --cores all` runs config/config.yaml;
# `--configfile config/presets/<paper>.yaml` runs a paper preset instead.
#
#   fetch -> settings -> dense (level 0) [-> rewind (theta_k)] -> level L of each mask chain
#   (prune + its head) [-> controls of a block of levels] -> transfer -> summary -> report, track
#
# The Snakemake workflow catalog puts this file at workflow/Snakefile; lth keeps it at the top, where
# `snakemake` finds it first (a top-level file that only includes another would lose its default
# target). Rules live in workflow/rules/ (one file per stage family; functions in common.smk). Which jobs
# exist and what each reads is the plan's (lth.plan.imp); the experiment logic lives in the `lth`
# package, which each rule calls through its command line.
#
# `snakemake --lint` findings left on purpose, with their reason:
# - "Specify a conda environment or container for each rule" (every rule): every rule runs in one
#   environment, the locked `.venv` (uv.lock) that `make setup` builds; the same locked environment
#   is what a cluster's shared project folder uses (docs/guides/slurm.md). A
#   per-rule conda file would duplicate the lock file and could drift from it.

from snakemake.utils import min_version

min_version("9.0")


# A --configfile (a preset) replaces the default config instead of being merged into it, so
# `--configfile config/presets/X.yaml` runs exactly the preset's experiments.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/fetch.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/summary.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/tracking.smk"
include: "workflow/rules/versioning.smk"
include: "workflow/rules/recovery.smk"


rule all:
    default_target: True
    input:
        [summary_csv(name) for name in EXPERIMENTS],
        [report_html(name) for name in EXPERIMENTS],
        [f"{REPORTS}/compare-{name}.png" for name in config["comparisons"]],
        [
            analysis_csv(name, a)
            for name in EXPERIMENTS
            for a in PLANS[name].settings.analyses
        ],
        [f"{RESULTS}/{name}/mlflow-logged.txt" for name in EXPERIMENTS if TRACKING_URI],
