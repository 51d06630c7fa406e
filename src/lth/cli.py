"""`lth`: one subcommand per stage; the workflow's rules call these.

Heavy imports (torch, torchvision) happen inside the subcommands, so `lth --help` is instant.
A user error prints one line `lth: error: ...` and exits with status 2, writing nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lth.errors import LTHError


def _context(plan, args):
    """A job context for `plan` on the device and thread count that `args` give."""
    import torch

    from lth.jobs import Context, pick_device

    # The thread count is part of what a CPU result is bitwise reproducible for: by hand as in the
    # workflow (its `threads`, recorded in settings.json; 1 when neither says), and in every record.
    torch.set_num_threads(args.threads or plan.workflow.get("threads", 1))
    device = args.device if args.device is not None else plan.workflow.get("device", "auto")
    from lth.tracking import resolve_uri

    track = args.track if args.track is not None else (resolve_uri(plan.workflow.get("tracking_uri"))
                                                       if plan.workflow.get("live_tracking") else None)
    return Context(plan, pick_device(device), track_uri=track)


def _by_hand(args):
    """The plan of a settings file run by hand in results folder `args.results` (recorded there)."""
    from lth.plan import plan_of
    from lth.settings import read

    raw = read(args.settings)
    if isinstance(raw, dict):  # by hand, any seed
        seeds = raw.get("seeds", [])
        raw = {**raw, "seeds": [*seeds, args.seed] if isinstance(seeds, list) and args.seed not in seeds else seeds}
    plan = plan_of(Path(args.results).name, raw, args.results, {"data_dir": args.data_dir}, where=str(args.settings))
    plan.write()
    return plan, _context(plan, args)


def _score(summary: dict, percent: bool = False) -> str:
    """A run's test accuracy, or its test loss (a regression has no accuracy)."""
    if summary["test_accuracy"] is None:
        return f"test loss {summary['test_loss']:.4g}"
    return f"{100 * summary['test_accuracy']:.1f}%" if percent else f"test accuracy {summary['test_accuracy']:.4f}"


def _report(record: dict) -> None:
    s = record["summary"]
    target = f" on {record['target']}" if record.get("target") else ""
    print(f"seed {record['seed']} level {record['level']} {record['variant']}{target}: "
          f"weights remaining {record['weights_remaining']:.4f}, {_score(s)}, "
          f"early stop at {s['early_stop_iteration']}, {s['train_seconds']:.1f} s training")


def cmd_fetch(args) -> None:
    from lth.datasets import fetch

    options = dict(_key_value(o) for o in args.option) or None
    path = fetch(args.dataset, Path(args.data_dir), download=args.download, options=options)
    print(path)


def cmd_verify(args) -> None:
    from lth import pins

    if args.results:
        from lth.integrity import verify

        lines, bad = verify(args.results, delete=args.delete_damaged)
        print("\n".join(lines))
        if bad and not args.delete_damaged:
            raise LTHError(f"{args.results}: {bad} damaged files; `lth verify --results {args.results} "
                           f"--delete-damaged` deletes them and what must be recomputed with them")
        return

    p = pins.load(args.pins)
    data_dir = Path(args.data_dir)
    files = [Path(f) for f in args.files] or [data_dir / name for name in sorted(p.md5)]
    for f in files:
        if not f.is_file():
            if args.files:
                raise LTHError(f"{f}: not found")
            print(f"{f}: pinned in {p.file.name}, not fetched: not verified")
        elif digest := p.check(f, data_dir):
            print(f"{f}: md5 {digest} as pinned in {p.file.name}")
        else:
            print(f"{f}: not pinned in {p.file.name}: not verified")


def cmd_train(args) -> None:
    plan, ctx = _by_hand(args)
    for record in ctx.run(plan.job("dense", args.seed)):
        _report(record)
    if k := plan.settings.rewind_iteration:  # theta_k, for the variants that rewind to it
        ctx.run(plan.job("rewind", args.seed, k=k))
        print(f"seed {args.seed}: theta_k at iteration {k} in {plan.layout.rewind(args.seed, k)}")


def cmd_prune(args) -> None:
    from lth.layout import RunKey
    from lth.masks import density

    plan, ctx = _by_hand(args)
    for chain in args.chain or ["ticket"]:
        job = plan.holding(RunKey(args.seed, args.level, chain))  # refused unless the settings plan it
        if job.stage != "level" or job.chain != chain:
            raise LTHError(f"{chain} is not a mask chain of level {args.level} (a control trains on its chain's mask)")
        mask = ctx.prune(args.seed, args.level, chain)
        print(f"seed {args.seed} level {args.level} {chain}: weights remaining {density(mask):.4f}")


def cmd_retrain(args) -> None:
    from lth.layout import RunKey

    plan, ctx = _by_hand(args)
    for variant in args.variant:
        key = RunKey(args.seed, args.level, variant)
        _report(ctx.train_run(plan.holding(key), key))


def cmd_job(args) -> None:
    """One planned job; with --log, its output goes there and one line with its result to stdout."""
    import contextlib
    import time

    from lth.plan import GROUPED, Plan

    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if args.log:
            Path(args.log).parent.mkdir(parents=True, exist_ok=True)
            log = stack.enter_context(open(args.log, "w", buffering=1))
            stack.enter_context(contextlib.redirect_stdout(log))
            stack.enter_context(contextlib.redirect_stderr(log))
        try:
            plan = Plan.from_results(args.results)
            if args.stage in GROUPED and args.seed is not None:
                raise LTHError(f"a {args.stage} job trains every seed of the experiment: it takes no --seed")
            job = plan.job(args.stage, args.seed, args.level, args.chain, args.target, args.k,
                           fingerprint=args.fingerprint, runs=args.runs, to=args.to)
            records = _context(plan, args).run(job)
        except LTHError as exc:
            print(f"lth: error: {exc}")  # in the log too
            raise
        for record in records:
            _report(record)
    print(f"{plan.experiment}: {job}: {_results(records) or 'done'} ({time.perf_counter() - started:.0f} s)",
          flush=True)


def _results(records: list[dict]) -> str:
    """A job's result in a few words: each variant's test accuracy (the mean over the job's seeds),
    grouped by level with its weights remaining."""
    levels: dict[int, dict[str, list[dict]]] = {}
    for r in records:
        levels.setdefault(r["level"], {}).setdefault(r["variant"], []).append(r["summary"])
    seeds = len({r["seed"] for r in records})

    def mean(summaries: list[dict]) -> str:
        keys = ("test_accuracy", "test_loss")
        return _score({k: None if summaries[0][k] is None else sum(s[k] for s in summaries) / len(summaries)
                       for k in keys}, percent=True)

    weights = {r["level"]: r["weights_remaining"] for r in records}
    return (f"mean of {seeds} seeds, " if seeds > 1 else "") + "; ".join(
        f"{100 * weights[level]:.1f}% weights: " + ", ".join(f"{v} {mean(ss)}" for v, ss in variants.items())
        for level, variants in levels.items())


def cmd_analyse(args) -> None:
    from lth import analyses
    from lth.plan import Plan

    print(analyses.run(Plan.from_results(args.results), args.analysis))


def cmd_summarize(args) -> None:
    from lth.plan import Plan
    from lth.summary import write_summary

    print(write_summary(Plan.from_results(args.results)))


def cmd_track(args) -> None:
    from lth import tracking
    from lth.plan import Plan

    if not args.results and not (args.prepare and args.experiment):
        raise LTHError("give --results (or, with --prepare, --experiment)")
    plan = Plan.from_results(args.results) if args.results else None
    uri = tracking.resolve_uri(args.tracking_uri or (plan.workflow.get("tracking_uri") if plan else None))
    if args.prepare:
        name = args.experiment or plan.experiment
        print(f"MLflow experiment '{name}' (id {tracking.prepare(uri, [name])[name]}) at {uri}")
        return
    try:
        new, old, unfinished = tracking.sync(uri, plan)
    except LTHError:  # a user error: as it is
        raise
    except Exception as exc:
        raise LTHError(f"MLflow tracking at {uri} failed ({type(exc).__name__}: {exc}); the results are on disk: "
                       f"run this command again once the store is reachable, or, if the store itself is damaged "
                       f"(a SQLite file that no longer opens), delete it (and its mlartifacts/) and run again: "
                       f"every run is logged anew from the results") from None
    print(f"{plan.experiment}: logged {new} runs to {uri} ({old} were there already"
          + (f", {unfinished} not finished" if unfinished else "") + ")")
    exp_id = tracking.prepare(uri, [plan.experiment])[plan.experiment]
    if page := tracking.ui_url(uri, exp_id):
        print(f"runs: {page}")
    else:
        print(f"browse: mlflow ui --backend-store-uri {uri}, then open "
              f"{tracking.ui_url('http://127.0.0.1:5000', exp_id)}")


def _key_value(text: str):
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise LTHError(f"--option {text!r}: expected KEY=VALUE")
    return key, yaml.safe_load(value)


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown in every option's help; descriptions keep their line breaks."""


def parser() -> argparse.ArgumentParser:
    import lth
    from lth.parts import DATASETS

    p = argparse.ArgumentParser(
        prog="lth", formatter_class=_Help,
        description="Lottery-ticket experiments, one stage per subcommand.\n\n"
                    "By hand: fetch, train, prune, retrain, verify.\n"
                    "Workflow steps (the Snakemake rules run these): job, summarize, analyse, track.")
    p.add_argument("--version", action="version", version=f"lth {lth.__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add = sub.add_parser
    sub.add_parser = lambda *a, **kw: _add(*a, formatter_class=_Help, **kw)  # defaults in every subcommand's help

    f = sub.add_parser("fetch", help="materialise a dataset under the data folder",
                       description="Generate (mnist1d, digits) or load with torchvision a dataset, stored as tensors.")
    f.add_argument("dataset", choices=list(DATASETS), metavar="DATASET", help=f"one of: {', '.join(DATASETS)}")
    f.add_argument("--data-dir", default="data", help="the data folder")
    f.add_argument("--download", action="store_true", help="let torchvision download missing raw files")
    f.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="generator option (mnist1d)")
    f.set_defaults(func=cmd_fetch)

    v = sub.add_parser("verify", help="check dataset files (data.dvc pins) or an experiment's results",
                       description="Check dataset files against the md5 pinned in a DVC file (a mismatch is an "
                                   "error naming both md5); files it does not pin are reported, not checked. "
                                   "With --results: every finished run's files, theta_k and the datasets.")
    v.add_argument("files", nargs="*", metavar="FILE", help="dataset files under --data-dir (default: every pinned one)")
    v.add_argument("--data-dir", default="data", help="the data folder the pins' paths are relative to")
    v.add_argument("--pins", default="data.dvc", help="the DVC file with the pins")
    v.add_argument("--results", help="check this experiment's results folder instead (results/NAME)")
    v.add_argument("--delete-damaged", action="store_true",
                   help="with --results: delete damaged files and what must be recomputed with them")
    v.set_defaults(func=cmd_verify)

    from lth.plan import STAGES
    from lth.variants import SOURCE

    def run_args(sp, by_hand: bool = True):
        if by_hand:
            sp.add_argument("--settings", required=True, help="YAML/JSON settings of one experiment")
            sp.add_argument("--data-dir", default="data", help="the data folder")
        sp.add_argument("--results", required=True, help="results folder of the experiment, e.g. results/NAME")
        sp.add_argument("--seed", type=int, required=by_hand,
                        help="the run's seed (init, data order, controls); jobs of every seed: none")
        sp.add_argument("--device", default=None if not by_hand else "auto",
                        help="auto (GPU if visible), cpu, cuda, cuda:N")
        sp.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (default: the workflow's `threads`, else 1)")
        sp.add_argument("--track", metavar="URI", help="log each finished run to this MLflow tracking URI")

    t = sub.add_parser("train", help="dense training, level 0",
                       description="Train the dense network from theta_0; save theta_0, final weights, metrics.")
    run_args(t)
    t.set_defaults(func=cmd_train)

    pr = sub.add_parser("prune", help="one pruning round: the mask of level L",
                        description="Prune the previous level's trained weights of a chain to get level L's mask.")
    run_args(pr)
    pr.add_argument("--level", type=int, required=True, help="the pruning level L >= 1 whose mask is made")
    pr.add_argument("--chain", action="append",
                    help="mask chain, or a one-shot method (repeatable; default: ticket)")
    pr.set_defaults(func=cmd_prune)

    r = sub.add_parser("retrain", help="train variants at level L",
                       description="Train variants (ticket, reinit, random_prune, lr_rewind, finetune) at level L.")
    run_args(r)
    r.add_argument("--level", type=int, required=True, help="the pruning level L >= 1 whose variants are trained")
    r.add_argument("--variant", action="append", required=True, choices=list(SOURCE), help="repeatable")
    r.set_defaults(func=cmd_retrain)

    j = sub.add_parser("job", help="run one job of the workflow's plan (what the Snakemake rules call)",
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
    j.set_defaults(func=cmd_job)

    tr = sub.add_parser("track", help="log an experiment's finished runs to MLflow (those not logged yet)",
                        description="Log every finished run (seed x level x variant) that the MLflow store does not "
                                    "hold yet: after training, or again after a tracking failure.")
    tr.add_argument("--results", help="results folder of the experiment (holds settings.json)")
    tr.add_argument("--experiment", help="with --prepare and no --results: the MLflow experiment to create")
    tr.add_argument("--tracking-uri", help="default: the workflow's, else $MLFLOW_TRACKING_URI, else "
                                           "sqlite:///mlflow.db here")
    tr.add_argument("--prepare", action="store_true", help="only create the store and the experiment")
    tr.set_defaults(func=cmd_track)

    sm = sub.add_parser("summarize", help="summary.csv and layer_density.csv of an experiment",
                        description="Tabulate every run (seed x level x variant) of an experiment.")
    sm.add_argument("--results", required=True, help="results folder of the experiment (holds settings.json)")
    sm.set_defaults(func=cmd_summarize)

    from lth.parts import ANALYSES

    an = sub.add_parser("analyse", help="an analysis of an experiment's finished runs (a table beside summary.csv)",
                        description="Compute a registered analysis on every finished run of an experiment.")
    an.add_argument("analysis", choices=list(ANALYSES))
    an.add_argument("--results", required=True, help="results folder of the experiment (holds settings.json)")
    an.set_defaults(func=cmd_analyse)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args, unknown = p.parse_known_args(argv)
    if unknown:  # name the subcommand's usage, not the top level's
        sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices[args.command]
        sub.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        args.func(args)
    except LTHError as exc:
        print(f"lth: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lth: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
