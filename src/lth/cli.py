"""`lth`: one subcommand per stage; the workflow's rules call these.

Heavy imports (torch, torchvision) happen inside the subcommands, so `lth --help` is instant.
A user error prints one line `lth: error: ...` and exits with status 2, writing nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lth.errors import LTHError


def _experiment(args):
    import torch

    from lth import settings
    from lth.layout import Layout
    from lth.runs import Experiment, pick_device

    if args.threads:
        torch.set_num_threads(args.threads)
    return Experiment(settings.load(args.settings), Layout(Path(args.results)), Path(args.data_dir),
                      pick_device(args.device), track_uri=args.track)


def _report(record: dict) -> None:
    s = record["summary"]
    print(f"seed {record['seed']} level {record['level']} {record['variant']}: "
          f"weights remaining {record['weights_remaining']:.4f}, test accuracy {s['test_accuracy']:.4f}, "
          f"early stop at {s['early_stop_iteration']}, {s['train_seconds']:.1f} s training")


def cmd_fetch(args) -> None:
    from lth.datasets import fetch

    options = dict(_key_value(o) for o in args.option) or None
    path = fetch(args.dataset, Path(args.data_dir), download=args.download, options=options)
    print(path)


def cmd_verify(args) -> None:
    from lth import pins

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
    _report(_experiment(args).train_dense(args.seed))


def cmd_prune(args) -> None:
    from lth.masks import density

    exp = _experiment(args)
    for chain in args.chain or ["ticket"]:
        mask = exp.prune_level(args.seed, args.level, chain)
        print(f"seed {args.seed} level {args.level} {chain}: weights remaining {density(mask):.4f}")


def cmd_retrain(args) -> None:
    exp = _experiment(args)
    for variant in args.variant:
        _report(exp.train_variant(args.seed, args.level, variant))


def cmd_claim(args) -> None:
    import json

    from lth import settings

    try:
        raw = json.loads(args.settings_json)
    except json.JSONDecodeError as exc:
        raise LTHError(f"--settings-json: not valid JSON ({exc})") from None
    settings.claim_results_folder(Path(args.results), settings.resolve(raw, where="--settings-json"))
    print(Path(args.results) / "settings.json")


def cmd_level(args) -> None:
    exp = _experiment(args)
    for record in exp.train_level(args.seed, args.level, args.chain, args.variant).values():
        _report(record)


def _full_settings(args) -> dict:
    """An experiment's whole settings (seeds, levels, variants, transfer): --settings-json or --settings."""
    import json

    from lth import settings

    if args.settings_json:
        try:
            return settings.resolve(json.loads(args.settings_json), where="--settings-json")
        except json.JSONDecodeError as exc:
            raise LTHError(f"--settings-json: not valid JSON ({exc})") from None
    if args.settings:
        return settings.load(args.settings)
    raise LTHError("give the experiment's settings: --settings FILE or --settings-json JSON")


def cmd_summarize(args) -> None:
    from lth.summary import write_summary

    print(write_summary(args.experiment, Path(args.results), _full_settings(args)))


def cmd_transfer(args) -> None:
    exp = _experiment(args)
    if args.target not in exp.settings["transfer"]["targets"]:
        raise LTHError(f"--target {args.target}: not a transfer target of {args.settings} "
                       f"(targets: {', '.join(exp.settings['transfer']['targets']) or 'none'})")
    for record in exp.train_transfer(args.seed, args.target, args.levels, args.variant).values():
        _report(record)


def cmd_track(args) -> None:
    from lth import settings, tracking
    from lth.summary import run_keys

    uri = tracking.resolve_uri(args.tracking_uri)
    if args.prepare:
        ids = tracking.prepare(uri, [args.experiment])
        print(f"MLflow experiment '{args.experiment}' (id {ids[args.experiment]}) at {uri}")
        return
    s = _full_settings(args)
    try:
        new, old = tracking.sync(uri, args.experiment, settings.core(s), Path(args.results), run_keys(s))
    except LTHError:  # a user error (e.g. an unfinished run): as it is
        raise
    except Exception as exc:
        raise LTHError(f"MLflow tracking at {uri} failed ({type(exc).__name__}: {exc}); "
                       f"the results are on disk: run this command again once the store is reachable") from None
    print(f"{args.experiment}: logged {new} runs to {uri} ({old} were there already)")


def _key_value(text: str):
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise LTHError(f"--option {text!r}: expected KEY=VALUE")
    return key, yaml.safe_load(value)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lth", description="Lottery-ticket experiments, one stage per subcommand.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    f = sub.add_parser("fetch", help="materialise a dataset under the data folder",
                       description="Generate (mnist1d, digits) or load with torchvision a dataset, stored as tensors.")
    f.add_argument("dataset")
    f.add_argument("--data-dir", default="data")
    f.add_argument("--download", action="store_true", help="let torchvision download missing raw files")
    f.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="generator option (mnist1d)")
    f.set_defaults(func=cmd_fetch)

    v = sub.add_parser("verify", help="check dataset files against the md5 that data.dvc pins",
                       description="Check dataset files against the md5 pinned in a DVC file (a mismatch is an "
                                   "error naming both md5); files it does not pin are reported, not checked.")
    v.add_argument("files", nargs="*", metavar="FILE", help="dataset files under --data-dir (default: every pinned one)")
    v.add_argument("--data-dir", default="data", help="the data folder the pins' paths are relative to")
    v.add_argument("--pins", default="data.dvc", help="the DVC file with the pins")
    v.set_defaults(func=cmd_verify)

    from lth.settings import CHAIN_OF, VARIANTS

    chains = sorted(set(CHAIN_OF.values()))

    def run_args(sp, level: bool, variants: bool = False):
        sp.add_argument("--settings", required=True, help="YAML/JSON settings of one experiment")
        sp.add_argument("--results", required=True, help="results folder of the experiment, e.g. results/NAME")
        sp.add_argument("--seed", type=int, required=True)
        if level:
            sp.add_argument("--level", type=int, required=True)
        sp.add_argument("--data-dir", default="data")
        sp.add_argument("--device", default="auto", help="auto (GPU if visible), cpu, cuda, cuda:N")
        sp.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
        sp.add_argument("--track", metavar="URI", help="log each finished run to this MLflow tracking URI")
        if variants:
            sp.add_argument("--variant", action="append", required=True, choices=VARIANTS, help="repeatable")

    t = sub.add_parser("train", help="dense training, level 0",
                       description="Train the dense network from theta_0; save theta_0, theta_k, final weights, metrics.")
    run_args(t, level=False)
    t.set_defaults(func=cmd_train)

    pr = sub.add_parser("prune", help="one pruning round: the mask of level L",
                        description="Prune the previous level's trained weights of a chain to get level L's mask.")
    run_args(pr, level=True)
    pr.add_argument("--chain", action="append", choices=chains,
                    help="mask chain (repeatable; default: ticket)")
    pr.set_defaults(func=cmd_prune)

    r = sub.add_parser("retrain", help="train variants at level L",
                       description="Train variants (ticket, reinit, random_prune, lr_rewind, finetune) at level L.")
    run_args(r, level=True, variants=True)
    r.set_defaults(func=cmd_retrain)

    lv = sub.add_parser("level", help="one IMP round of a chain: prune, then train its variants (one process)",
                        description="Prune level L's mask of a chain and train the chain's variants at level L; "
                                    "variants finished before an interruption are kept.")
    run_args(lv, level=True, variants=True)
    lv.add_argument("--chain", required=True, choices=chains)
    lv.set_defaults(func=cmd_level)

    tf = sub.add_parser("transfer", help="train source tickets on a transfer target",
                        description="Train the transfer variants on a target dataset: dense at level 0; "
                                    "ticket_transfer, mask_transfer, random_prune with the source's level-L tickets.")
    run_args(tf, level=False)
    tf.add_argument("--target", required=True, help="a name under transfer.targets in the settings")
    tf.add_argument("--levels", type=int, nargs="+", required=True, help="source levels (0: dense)")
    tf.add_argument("--variant", action="append", required=True,
                    choices=["ticket_transfer", "mask_transfer", "random_prune", "dense"], help="repeatable")
    tf.set_defaults(func=cmd_transfer)

    c = sub.add_parser("claim", help="record an experiment's settings in its results folder",
                       description="Write RESULTS/settings.json (the settings that determine the runs), or check "
                                   "that the folder already holds runs of the same settings.")
    c.add_argument("--results", required=True)
    c.add_argument("--settings-json", required=True, help="the experiment's settings as JSON")
    c.set_defaults(func=cmd_claim)

    tr = sub.add_parser("track", help="log an experiment's finished runs to MLflow (those not logged yet)",
                        description="Log every finished run (seed x level x variant) that the MLflow store does not "
                                    "hold yet: after training, or again after a tracking failure.")
    tr.add_argument("--experiment", required=True)
    tr.add_argument("--results", required=True)
    tr.add_argument("--settings", help="YAML/JSON settings of the experiment (seeds, levels, variants, targets)")
    tr.add_argument("--settings-json", help="the same, as a JSON string")
    tr.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here")
    tr.add_argument("--prepare", action="store_true", help="only create the store and the experiment")
    tr.set_defaults(func=cmd_track)

    sm = sub.add_parser("summarize", help="summary.csv and layer_density.csv of an experiment",
                        description="Tabulate every run (seed x level x variant) of an experiment.")
    sm.add_argument("--experiment", required=True)
    sm.add_argument("--results", required=True)
    sm.add_argument("--settings", help="YAML/JSON settings of the experiment (seeds, levels, variants, targets)")
    sm.add_argument("--settings-json", help="the same, as a JSON string")
    sm.set_defaults(func=cmd_summarize)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
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
