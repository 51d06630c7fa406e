"""Early-bird tickets (You et al. 2020, "Drawing Early-Bird Tickets"; robust early-bird tickets
with adversarial training): can the ticket be drawn early in the dense run?

For each seed, the dense run is replayed from theta_0 over the same batches with lth.analyses.earlybird_detector's
detector watching: every `every` iterations it draws the magnitude mask (or, `structured`, the
channel mask of network slimming, or on a transformer with units, lth.models.encoder, the mask of its
attention heads and feed-forward neurons as in EarlyBERT) at the density of the IMP ticket of level
`level` (structured: that fraction of the channels, or of the heads and of the neurons), and declares
the early-bird ticket when the normalised Hamming distances to the previous `window` masks are all
below `threshold`. That mask is then trained from theta_0 for the whole budget (`eb-init`: a
lottery ticket found early) and from the weights it was drawn at for the rest of the budget
(`eb-found`: You et al.'s prune-and-continue), beside the IMP ticket of that level.
Iterations to find a ticket: early-bird, the iteration it fired at; IMP, the dense run and `level`
rounds of T - k iterations. If the detector never fires, the last mask drawn stands in for it and
the table says so. With adversarial training (`training.adversarial`), every run's robust test
accuracy under that attack is in the table too.
"""

from __future__ import annotations

from lth.plan.job import Job
from lth.plan.layout import RunKey
from lth.plan.variants import DENSE

NAME = "earlybird"
VARIANTS = ("eb-init", "eb-found")


def check(s: dict, where: str) -> None:
    from lth.core.errors import LTHError
    from lth.plan.variants import chains

    o, at = s[NAME], f"{where}: {NAME}"
    if s["kind"] != "imp" or "ticket" not in chains(s["variants"]):
        raise LTHError(f"{at}: compares with the IMP ticket: needs kind imp with 'ticket' in variants")
    if not 1 <= o["level"] <= s["pruning"]["levels"]:
        raise LTHError(f"{at}.level: {o['level']} is not an IMP level (1 to pruning.levels = {s['pruning']['levels']})")
    if not 0 < o["threshold"] < 1:
        raise LTHError(f"{at}.threshold: {o['threshold']!r} is not in (0, 1) (a normalised Hamming distance)")
    if o["every"] >= s["training"]["iterations"]:
        raise LTHError(f"{at}.every: {o['every']} draws no mask within the budget (training.iterations = "
                       f"{s['training']['iterations']})")
    if o["structured"]:
        check_structured(s, at)


def check_structured(s: dict, at: str) -> None:
    """Structured masks need units to prune: a model with `units()` (heads and feed-forward neurons,
    lth.models.encoder) or BatchNorm channels after convolutions. Builds the model (torch: only here)."""
    from lth.analyses.earlybird_detector import channel_groups
    from lth.core.errors import LTHError
    from lth.models import build_model
    from lth.plan.facts import input_shape, num_classes

    m = s["model"]
    model = build_model(m["name"], input_shape(s["dataset"]), num_classes(s["dataset"]), seed=0, **m["options"])
    if callable(getattr(model, "units", None)):
        return
    try:
        channel_groups(model, trace=False)
    except LTHError:
        raise LTHError(f"{at}.structured: model {m['name']!r} has neither attention heads and feed-forward "
                       f"neurons (units) nor BatchNorm channels after convolutions to prune") from None


def jobs(plan) -> list[Job]:
    return [Job("probe", seed, plan.settings[NAME].level, NAME) for seed in plan.settings.seeds]


def runs(job: Job) -> list[RunKey]:
    return [RunKey(job.seed, job.level, v, analysis=NAME) for v in VARIANTS]


def inputs(plan, job: Job) -> list:
    """theta_0 (the dense job's) and the IMP ticket of the level, whose density the search uses."""
    return [plan.layout.metrics(RunKey(job.seed, 0, DENSE)),
            plan.level_done(job.level, "ticket", job.seeds)]


def search_file(plan, job: Job):
    return plan.layout.analysis_dir(NAME) / f"seed{job.seed}" / f"level{job.level:02d}-search"


def search(ctx, job: Job) -> dict:
    """Replay the dense run with the detector; keep its masks, the weights it fired at and its record."""
    import torch

    from lth.analyses.earlybird_detector import EarlyBird
    from lth.core.files import read_json, write_json
    from lth.jobs.replay import replay_dense
    from lth.pruning import masks
    from lth.store import artifacts

    plan, s, o = ctx.plan, ctx.plan.settings, ctx.plan.settings[NAME]
    base = search_file(plan, job)
    if base.with_suffix(".json").exists():
        return read_json(base.with_suffix(".json"))
    ticket = ctx.load(plan.layout.mask(RunKey(job.seed, job.level, "ticket")), "cpu")
    caught = {}

    def watch(model, full):
        eb = EarlyBird(model, full, masks.density(ticket), o.every, o.window, o.threshold, o.structured)

        def observe(t, x, y):
            eb(t, x, y)
            if eb.last_at == t:  # the weights every mask was drawn from: the latest, and the one it fired at
                state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                caught["last"] = state
                if eb.fired_at == t:
                    caught["fired"] = state

        caught["detector"] = eb
        return observe

    replay_dense(ctx, job.seed, s.training.iterations, watch, f"early-bird search seed {job.seed}")
    found = caught["detector"]
    fired = found.fired_at is not None
    at = found.fired_at if fired else found.last_at
    mask = found.ticket if fired else found.last
    artifacts.save_tensors(base.with_name(base.name + "-mask.safetensors"),
                           {k: v.to(torch.bool) for k, v in mask.items()})
    artifacts.save_tensors(base.with_name(base.name + "-weights.safetensors"), caught["fired" if fired else "last"])
    record = {"fired": fired, "iteration": at, "density": masks.density(mask),
              "distances": [[int(t), float(d)] for t, d in found.distances]}
    write_json(base.with_suffix(".json"), record)
    return record


def train(ctx, job: Job) -> list[dict]:
    """The early-bird ticket from theta_0 for the whole budget, and from where it was drawn for the rest."""
    from lth.core.seeding import derive_seed
    from lth.jobs.runs import train_and_mark
    from lth.jobs.start import Start, schedule
    from lth.pruning import masks
    from lth.store import artifacts

    base = search_file(ctx.plan, job)
    found = search(ctx, job)

    drawn = ctx.load(base.with_name(base.name + "-mask.safetensors"))

    def start_of(key):
        mask = {n: m.clone() for n, m in drawn.items()}
        if key.variant == "eb-found":  # where it was drawn
            model, start = ctx.new_model(job.seed), found["iteration"]
            artifacts.load_weights(model, base.with_name(base.name + "-weights.safetensors"))
        else:
            model, start = ctx.theta_0(job.seed), 0
        masks.check_mask(model, mask, str(base))
        masks.apply_mask(model, mask)
        return Start(model, mask, start, schedule(ctx.plan.settings.training, "full"), derive_seed(job.seed, "data"))

    return train_and_mark(ctx, job, runs(job), start_of)


def compute(plan) -> list[dict]:
    from lth.core.files import read_json
    from lth.store.results import read_record

    s, rows = plan.settings, []
    T, k = s.training.iterations, s.rewind_iteration
    adversarial = s.training.adversarial.method != "none"
    for job in plan.probes(NAME):
        found = read_json(search_file(plan, job).with_suffix(".json"))
        keys = {"dense": RunKey(job.seed, 0, DENSE), "imp ticket": RunKey(job.seed, job.level, "ticket"),
                **{v: RunKey(job.seed, job.level, v, analysis=NAME) for v in VARIANTS}}
        for name, key in keys.items():
            record = read_record(plan.layout.metrics(key))
            row = {"experiment": plan.experiment, "seed": job.seed, "level": job.level, "run": name,
                   "weights_remaining": record["weights_remaining"],
                   "test_accuracy": record["summary"]["test_accuracy"],
                   "iterations_to_find": {"dense": 0, "imp ticket": T + job.level * (T - k)}.get(name,
                                                                                              found["iteration"]),
                   "early_bird_fired": found["fired"], "early_bird_iteration": found["iteration"]}
            if adversarial:
                row["robust_test_accuracy"] = robust(plan, key)
            rows.append(row)
    return rows


def robust(plan, key: RunKey) -> float:
    """A run's test accuracy under the experiment's own attack (its training.adversarial)."""
    import torch

    from lth.core.seeding import derive_seed
    from lth.jobs import Context
    from lth.store import artifacts
    from lth.training.adversarial import robust_accuracy

    ctx = Context(plan, torch.device("cpu"))
    model = ctx.new_model(key.seed)
    artifacts.load_weights(model, plan.layout.final(key))
    a, splits = plan.settings.training.adversarial, ctx.splits()
    g = torch.Generator().manual_seed(derive_seed(key.seed, "robust"))
    return robust_accuracy(model, splits.x_test, splits.y_test, a.method, a.epsilon, a.steps, g)


def figure(table):
    """Test accuracy of the early-bird tickets beside the IMP ticket and dense, per seed."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    names = list(dict.fromkeys(table["run"]))
    for i, (seed, rows) in enumerate(table.groupby("seed")):
        x = [names.index(r) + 0.8 * (i / max(1, table["seed"].nunique()) - 0.4) for r in rows["run"]]
        ax.bar(x, 100 * rows["test_accuracy"], width=0.8 / table["seed"].nunique(), label=f"seed {seed}")
        if "robust_test_accuracy" in rows:
            ax.scatter(x, 100 * rows["robust_test_accuracy"], color="black", marker="x", zorder=5,
                       label="robust accuracy" if i == 0 else None)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("test accuracy (%)")
    eb = table.drop_duplicates("seed")
    ax.set_title(f"Early-bird tickets at {100 * table['weights_remaining'].iloc[-1]:.1f} % weights: found at "
                 f"iteration {', '.join(str(int(i)) for i in eb['early_bird_iteration'])}")
    ax.legend(fontsize="small")
    return fig


def caption(table) -> str:
    fired = table.drop_duplicates("seed")["early_bird_fired"].astype(str).eq("True")
    return (f"Figure E. Early-bird tickets (You et al. 2020): the mask drawn when the masks of the dense run stopped "
            f"moving, trained from theta_0 (eb-init) and from where it was drawn (eb-found), beside the IMP ticket "
            f"of the same density and the dense network; the detector fired for {int(fired.sum())} of "
            f"{len(fired)} seed(s) (else the last mask drawn stands in).")


def overview(table):
    cols = ["seed", "run", "weights_remaining", "test_accuracy", "iterations_to_find"]
    cols += ["robust_test_accuracy"] if "robust_test_accuracy" in table else []
    return table[cols]
