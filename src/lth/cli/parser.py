"""The command line: one subcommand per stage, each built by its own function below.
A user error prints one line `lth: error: ...` and exits with status 2 (lth.cli.main)."""

from __future__ import annotations

import argparse

import lth
from lth.cli import commands
from lth.core.parts import ANALYSES, DATASETS
from lth.plan.job import STAGES
from lth.plan.variants import SOURCE


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown in every option's help; descriptions keep their line breaks."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lth", formatter_class=_Help,
        description="Lottery-ticket experiments, one stage per subcommand.\n\n"
                    "By hand: fetch, train, prune, retrain, verify, export.\n"
                    "Workflow steps (the Snakemake rules run these): job, summarize, analyse, track.")
    p.add_argument("--version", action="version", version=f"lth {lth.__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (add_fetch, add_verify, add_train, add_prune, add_retrain, add_export, add_job, add_track,
                add_summarize, add_analyse, add_scorecard):
        add(lambda *a, **kw: sub.add_parser(*a, formatter_class=_Help, **kw))  # defaults in every subcommand's help
    return p


def subcommands(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Each subcommand's own parser, by name."""
    return next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices


def run_args(sp, by_hand: bool = True) -> None:
    """The options of a command that trains: by hand (a settings file, one seed) or a planned job."""
    if by_hand:
        sp.add_argument("--settings", required=True, help="YAML/JSON settings of one experiment")
        sp.add_argument("--data-dir", default="data", help="the data folder")
    sp.add_argument("--results", required=True, help="results folder of the experiment, e.g. results/NAME")
    sp.add_argument("--seed", type=int, required=by_hand,
                    help="the run's seed (init, data order, controls); a job of several seeds: any of them")
    sp.add_argument("--device", default=None if not by_hand else "auto",
                    help="auto (GPU if visible), cpu, cuda, cuda:N")
    sp.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads (default: the workflow's `threads`, else 1)")
    sp.add_argument("--track", metavar="URI", help="log each finished run to this MLflow tracking URI")


def add_fetch(new) -> None:
    f = new("fetch", help="materialise a dataset under the data folder",
            description="Generate (mnist1d, digits) or load with torchvision a dataset, stored as tensors.")
    f.add_argument("dataset", choices=list(DATASETS), metavar="DATASET", help=f"one of: {', '.join(DATASETS)}")
    f.add_argument("--data-dir", default="data", help="the data folder")
    f.add_argument("--download", action="store_true", help="let torchvision download missing raw files")
    f.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="generator option (mnist1d)")
    f.set_defaults(func=commands.cmd_fetch)


def add_verify(new) -> None:
    v = new("verify", help="check dataset files (data.dvc pins) or an experiment's results",
            description="Check dataset files against the md5 pinned in a DVC file (a mismatch is an "
                        "error naming both md5); files it does not pin are reported, not checked. "
                        "With --results: every finished run's files, theta_k and the datasets.")
    v.add_argument("files", nargs="*", metavar="FILE", help="dataset files under --data-dir (default: every pinned one)")
    v.add_argument("--data-dir", default="data", help="the data folder the pins' paths are relative to")
    v.add_argument("--pins", default="data.dvc", help="the DVC file with the pins")
    v.add_argument("--results", help="check this experiment's results folder instead (results/NAME)")
    v.add_argument("--delete-damaged", action="store_true",
                   help="with --results: delete damaged files and what must be recomputed with them")
    v.set_defaults(func=commands.cmd_verify)


def add_train(new) -> None:
    t = new("train", help="dense training, level 0",
            description="Train the dense network from theta_0; save theta_0, final weights, metrics.")
    run_args(t)
    t.set_defaults(func=commands.cmd_train)


def add_prune(new) -> None:
    pr = new("prune", help="one pruning round: the mask of level L",
             description="Prune the previous level's trained weights of a chain to get level L's mask.")
    run_args(pr)
    pr.add_argument("--level", type=int, required=True, help="the pruning level L >= 1 whose mask is made")
    pr.add_argument("--chain", action="append",
                    help="mask chain, or a one-shot method (repeatable; default: ticket)")
    pr.set_defaults(func=commands.cmd_prune)


def add_retrain(new) -> None:
    r = new("retrain", help="train variants at level L",
            description="Train variants (ticket, reinit, random_prune, lr_rewind, finetune) at level L.")
    run_args(r)
    r.add_argument("--level", type=int, required=True, help="the pruning level L >= 1 whose variants are trained")
    r.add_argument("--variant", action="append", required=True, choices=list(SOURCE), help="repeatable")
    r.set_defaults(func=commands.cmd_retrain)


def add_export(new) -> None:
    e = new("export", help="one ticket as a standalone safetensors file (weights, mask, model config)",
            description="Write a finished run's masked weights, its mask (tensors mask/<parameter>) and the model's "
                        "config (metadata 'model': name, options, input shape, classes) to one safetensors file, "
                        "loadable with safetensors and torch alone (docs/guides/structured.md).")
    e.add_argument("--results", required=True, help="results folder of the experiment (holds settings.json)")
    e.add_argument("--seed", type=int, required=True, help="the run's seed")
    e.add_argument("--level", type=int, required=True,
                   help="the run's level (IMP: the round; kind oneshot: the density per 10,000, e.g. 500)")
    e.add_argument("--variant", default=None,
                   help="the run's variant (default: the experiment's first ticket chain: ticket, or the first "
                        "one-shot method)")
    e.add_argument("--out", required=True, help="the file to write, e.g. ticket.safetensors")
    e.set_defaults(func=commands.cmd_export)


def add_job(new) -> None:
    j = new("job", help="run one job of the workflow's plan (what the Snakemake rules call)",
            description="Run one planned job of the experiment whose settings.json is in --results.")
    j.add_argument("stage", choices=list(STAGES))
    run_args(j, by_hand=False)
    j.add_argument("--level", type=int, default=0, help="level, controls and transfer jobs: the pruning level")
    j.add_argument("--chain", default="", help="level jobs: the mask chain (kind oneshot: the method)")
    j.add_argument("--target", default="", help="transfer jobs: the transfer target")
    j.add_argument("--k", type=int, default=0, help="rewind point of a rewind job")
    j.add_argument("--fingerprint", help="the stage fingerprint the job was planned with (refused if stale)")
    j.add_argument("--to", type=int, default=0, help="controls jobs: their last level (--level: the first)")
    j.add_argument("--runs", default="", help="level, controls and transfer jobs: the id of their runs (in their "
                                              "marker's name)")
    j.add_argument("--log", help="write the job's output to this file; print one line with its result")
    j.set_defaults(func=commands.cmd_job)


def add_track(new) -> None:
    tr = new("track", help="log an experiment's finished runs to MLflow (those not logged yet)",
             description="Log every finished run (seed x level x variant) that the MLflow store does not "
                         "hold yet: after training, or again after a tracking failure.")
    tr.add_argument("--results", help="results folder of the experiment (holds settings.json)")
    tr.add_argument("--experiment", help="with --prepare and no --results: the MLflow experiment to create")
    tr.add_argument("--tracking-uri", help="default: the workflow's, else $MLFLOW_TRACKING_URI, else "
                                           "sqlite:///mlflow.db here")
    tr.add_argument("--prepare", action="store_true", help="only create the store and the experiment")
    tr.set_defaults(func=commands.cmd_track)


def add_summarize(new) -> None:
    sm = new("summarize", help="summary.csv and layer_density.csv of an experiment",
             description="Tabulate every run (seed x level x variant) of an experiment.")
    sm.add_argument("--results", required=True, help="results folder of the experiment (holds settings.json)")
    sm.set_defaults(func=commands.cmd_summarize)


def add_analyse(new) -> None:
    an = new("analyse", help="an analysis of an experiment's finished runs (a table beside summary.csv)",
             description="Compute a registered analysis on every finished run of an experiment.")
    an.add_argument("analysis", choices=list(ANALYSES))
    an.add_argument("--results", required=True, help="results folder of the experiment (holds settings.json)")
    an.set_defaults(func=commands.cmd_analyse)


def add_scorecard(new) -> None:
    sc = new("scorecard", help="every claim of the given configs' experiments, with its verdict",
             description="Evaluate the claims (reference.claims) of every experiment of the configs on its results "
                         "and write scorecard.csv and scorecard.html; experiments not run say why.")
    sc.add_argument("configs", nargs="*", default=None,
                    help="config files (default: config/config.yaml and config/presets/*.yaml)")
    sc.add_argument("--results", default="results", help="the folder holding each experiment's results folder")
    sc.add_argument("--out", default="reports", help="where scorecard.csv and scorecard.html go")
    sc.add_argument("--readme", default=None, help="also rewrite this README's scorecard table (between its markers)")
    sc.set_defaults(func=commands.cmd_scorecard)

