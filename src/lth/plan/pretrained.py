"""Pre-trained starting points: an experiment whose theta_0 is another experiment's trained dense network.

Chen et al. 2020 ("The Lottery Ticket Hypothesis for Pre-trained BERT Networks") look for tickets
of a network that was pre-trained rather than randomly initialised: IMP rewinds to the
pre-trained weights. Here that is `model.pretrained: <experiment>`: for seed S, theta_0 is that
experiment's trained dense network of seed S, with this experiment's own output layer (fresh from
seed S) when the numbers of classes differ. Everything downstream follows from theta_0 as it does
for a random init: the dense run fine-tunes from it, a ticket rewinds to it, `random_prune` keeps
it under a random mask, while `reinit` draws fresh random weights (the control without
pre-training), and transfer carries it to other tasks.

The link is resolved when the config is read (`link`): the named experiment must be in the same
config, build the same architecture (model and options), take the same inputs and run every seed;
its dense fingerprint is written into `model.pretrained`, so that pre-training differently
changes this experiment's fingerprints and never reuses its runs. Cycles are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from lth.core.errors import LTHError
from lth.plan.facts import input_shape
from lth.plan.fingerprints import fingerprints
from lth.plan.layout import Layout, RunKey
from lth.plan.settings import Settings, resolve
from lth.plan.variants import DENSE


def source_of(s: Settings) -> str | None:
    """The experiment whose dense network is theta_0 here (None: a random init)."""
    p = s.model.pretrained
    return None if p is None else (p if isinstance(p, str) else p["experiment"])


def link(experiments: Mapping[str, Settings], raw: Mapping[str, dict], source: str) -> dict[str, Settings]:
    """The experiments with every `model.pretrained` checked and resolved to {experiment, dense fp}."""
    out: dict[str, Settings] = dict(experiments)
    linked: set[str] = set()

    def resolved(name: str, path: tuple[str, ...]) -> Settings:
        s, src = out[name], source_of(out[name])
        if src is None or name in linked:
            return s
        where = f"{source}: experiments.{name}.model.pretrained"
        if name in path:
            cycle = " -> ".join((*path[path.index(name):], name))
            raise LTHError(f"{where}: pre-training runs in a cycle ({cycle})")
        if src not in out:
            raise LTHError(f"{where}: {src!r} is not an experiment of this config; known: {', '.join(out)}")
        base = resolved(src, (*path, name))
        check_compatible(s, base, where, src)
        settings = dict(raw[name])
        settings["model"] = {**settings.get("model", {}),
                             "pretrained": {"experiment": src, "dense": fingerprints(base)["dense"]}}
        out[name] = resolve(settings, where=f"{source}: experiments.{name}")
        linked.add(name)
        return out[name]

    for name in experiments:
        resolved(name, ())
    return out


def check_compatible(s: Settings, base: Settings, where: str, src: str) -> None:
    """The same architecture on the same inputs, and every seed of `s` pre-trained."""
    if (s.model.name, dict(s.model.options)) != (base.model.name, dict(base.model.options)):
        raise LTHError(f"{where}: {src!r} trains model {base.model.name} {dict(base.model.options)}, this experiment "
                       f"{s.model.name} {dict(s.model.options)}: a pre-trained network must be the same architecture")
    if tuple(input_shape(s.dataset)) != tuple(input_shape(base.dataset)):
        raise LTHError(f"{where}: {src!r} takes inputs of shape {tuple(input_shape(base.dataset))}, this experiment "
                       f"{tuple(input_shape(s.dataset))}")
    missing = sorted(set(s.seeds) - set(base.seeds))
    if missing:
        raise LTHError(f"{where}: {src!r} has no runs of seeds {missing}: add them to its seeds")


def weights_file(root: Path, s: Settings, seed: int) -> tuple[Path, Path]:
    """(the pre-trained weights of `seed`, the file that marks them finished), beside this
    experiment's results folder `root` (every experiment of a config is a folder of one results_dir)."""
    p = s.model.pretrained
    if not isinstance(p, Mapping):
        raise LTHError(f"model.pretrained: {p!r} is not resolved: an experiment that starts from another "
                       f"experiment's network runs through the workflow, which links the two")
    layout = Layout(Path(root).parent / p["experiment"], {"dense": p["dense"]})
    key = RunKey(seed, 0, DENSE)
    return layout.final(key), layout.metrics(key)
