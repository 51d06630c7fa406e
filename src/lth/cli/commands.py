"""What each subcommand does (`lth.cli.parser` says what it takes). Heavy imports (torch,
torchvision, mlflow) happen inside the commands, so `lth --help` is instant."""

from __future__ import annotations

from pathlib import Path

from lth.core.errors import LTHError


def _context(plan, args):
    """A job context for `plan` on the device and thread count that `args` give, its reproducibility
    switches set (lth.jobs.device); a GPU job holds a GPU slot until it ends."""
    import torch

    from lth.core import preemption
    from lth.jobs import Context
    from lth.jobs.device import configure, pick_device
    from lth.store.tracking import resolve_uri

    # The thread count is part of what a CPU result is bitwise reproducible for: by hand as in the
    # workflow (its `threads`, recorded in settings.json; 1 when neither says), and in every record.
    torch.set_num_threads(args.threads or plan.workflow.get("threads", 1))
    preemption.install()  # a training job stops at its current step when the cluster preempts it
    requested = args.device if args.device is not None else plan.workflow.get("device", "auto")
    device = pick_device(requested, plan.layout.gpu_slots, int(plan.workflow.get("jobs_per_gpu", 1)))
    configure(device, plan.settings.training.precision)
    track = args.track if args.track is not None else (resolve_uri(plan.workflow.get("tracking_uri"))
                                                       if plan.workflow.get("live_tracking") else None)
    return Context(plan, device, track_uri=track)


def _by_hand(args):
    """The plan of a settings file run by hand in results folder `args.results` (recorded there)."""
    from lth.plan import plan_of
    from lth.plan.settings import read

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
    from lth.data.fetch import fetch

    options = dict(_key_value(o) for o in args.option) or None
    path = fetch(args.dataset, Path(args.data_dir), download=args.download, options=options)
    print(path)


def cmd_verify(args) -> None:
    from lth.data import pins

    if args.results:
        from lth.store.integrity import verify

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
    from lth.jobs.prune import prune_level
    from lth.plan.layout import RunKey
    from lth.pruning.masks import density

    plan, ctx = _by_hand(args)
    for chain in args.chain or ["ticket"]:
        job = plan.holding(RunKey(args.seed, args.level, chain))  # refused unless the settings plan it
        if job.stage != "level" or job.chain != chain:
            raise LTHError(f"{chain} is not a mask chain of level {args.level} (a control trains on its chain's mask)")
        mask = prune_level(ctx, args.seed, args.level, chain)
        print(f"seed {args.seed} level {args.level} {chain}: weights remaining {density(mask):.4f}")


def cmd_retrain(args) -> None:
    from lth.jobs.runs import train_run
    from lth.plan.layout import RunKey

    plan, ctx = _by_hand(args)
    for variant in args.variant:
        key = RunKey(args.seed, args.level, variant)
        _report(train_run(ctx, plan.holding(key), key))


def cmd_export(args) -> None:
    from lth.plan import Plan
    from lth.plan.layout import RunKey
    from lth.store.export import export_ticket

    plan = Plan.from_results(args.results)
    key = RunKey(args.seed, args.level, args.variant or plan.ticket_chains()[0])
    meta = export_ticket(plan, key, args.out)
    print(f"{args.out}: seed {key.seed} level {key.level} {key.variant}, weights remaining "
          f"{float(meta['weights_remaining']):.4f}, model {meta['model']}")


def cmd_job(args) -> None:
    """One planned job; with --log, its output goes there and one line with its result to stdout."""
    import contextlib
    import time

    from lth.core import preemption
    from lth.plan import Plan

    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if args.log:
            Path(args.log).parent.mkdir(parents=True, exist_ok=True)
            log = stack.enter_context(open(args.log, "w", buffering=1))
            stack.enter_context(contextlib.redirect_stdout(log))
            stack.enter_context(contextlib.redirect_stderr(log))
        try:
            plan = Plan.from_results(args.results)
            job = plan.job(args.stage, args.seed, args.level, args.chain, args.target, args.k,
                           fingerprint=args.fingerprint, runs=args.runs, to=args.to)
            records = _context(plan, args).run(job)
        except LTHError as exc:
            print(f"lth: error: {exc}")  # in the log too
            raise
        except preemption.Preempted as exc:
            print(f"lth: {exc}")  # in the log: why the job stopped and what it kept
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
    from lth.store.summary import write_summary

    print(write_summary(Plan.from_results(args.results)))


def cmd_scorecard(args) -> None:
    from lth.report.scorecard import configs_of, summary_line, write

    configs = [Path(c) for c in args.configs] or configs_of()
    table = write(configs, Path(args.results), Path(args.out), Path(args.readme) if args.readme else None)
    print(f"{Path(args.out) / 'scorecard.html'}: {summary_line(table)}")


def cmd_track(args) -> None:
    from lth.plan import Plan
    from lth.store import tracking

    if not args.results and not (args.prepare and args.experiment):
        raise LTHError("give --results (or, with --prepare, --experiment)")
    plan = Plan.from_results(args.results) if args.results else None
    uri = tracking.resolve_uri(args.tracking_uri or (plan.workflow.get("tracking_uri") if plan else None))
    shown = tracking.shown(uri)
    try:
        if args.prepare:
            name = args.experiment or plan.experiment
            print(f"MLflow experiment '{name}' (id {tracking.prepare(uri, [name])[name]}) at {shown}")
            return
        new, old, unfinished = tracking.sync(uri, plan)
        exp_id = tracking.prepare(uri, [plan.experiment])[plan.experiment]
    except LTHError:  # a user error: as it is
        raise
    except Exception as exc:
        if why := tracking.refusal(exc):
            raise LTHError(f"MLflow server {shown} refused the request ({why}): set MLFLOW_TRACKING_USERNAME and "
                           f"MLFLOW_TRACKING_PASSWORD in the environment to an account that may write this "
                           f"experiment (never in the config); the results are on disk: run this command again"
                           ) from None
        said = str(exc).replace(uri, shown)
        raise LTHError(f"MLflow tracking at {shown} failed ({type(exc).__name__}: {said}); the results are on disk: "
                       f"run this command again once the store is reachable, or, if the store itself is damaged "
                       f"(a SQLite file that no longer opens), delete it (and its mlartifacts/) and run again: "
                       f"every run is logged anew from the results") from None
    print(f"{plan.experiment}: logged {new} runs to {shown} ({old} were there already"
          + (f", {unfinished} not finished" if unfinished else "") + ")")
    if page := tracking.ui_url(shown, exp_id):
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
