"""Pre-trained starting points (model.pretrained, lth.plan.pretrained): linked when the config is read,
theta_0 loaded bitwise from the other experiment's trained dense network, refused when it is not
the same architecture."""

from pathlib import Path

import pytest
import torch

from lth.core.errors import LTHError
from lth.jobs import Context
from lth.jobs.start import start_state
from lth.jobs.transfer import load_into
from lth.models import build_model
from lth.plan import plan_of
from lth.plan.config import load
from lth.plan.fingerprints import fingerprints
from lth.plan.layout import RunKey
from lth.store import artifacts

from conftest import tiny

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def config(**experiments):
    return {"experiments": experiments}


def down(source="pre", **changes):
    return tiny({"model": {"name": "mlp1d", "options": {"hidden": 32}, "pretrained": source}, **changes})


def test_the_link_carries_the_pretrained_dense_fingerprint_so_pretraining_again_changes_the_runs(tmp_path):
    _, exps = load(config(pre=tiny(), down=down()), SCHEMA, "c.yaml", cwd=tmp_path)
    assert exps["down"].model.pretrained.thaw() == {"experiment": "pre", "dense": fingerprints(exps["pre"])["dense"]}
    _, other = load(config(pre=tiny({"training": {"lr": 0.02}}), down=down()), SCHEMA, "c.yaml", cwd=tmp_path)
    assert fingerprints(other["down"])["dense"] != fingerprints(exps["down"])["dense"]
    # a chain resolves in order, whatever order the config lists it in
    _, chain = load(config(c=down("b"), b=down("pre"), pre=tiny()), SCHEMA, "c.yaml", cwd=tmp_path)
    assert chain["c"].model.pretrained["dense"] == fingerprints(chain["b"])["dense"]


@pytest.mark.parametrize("experiments, fragment", [
    ({"down": down("nope")}, "experiments.down.model.pretrained: 'nope' is not an experiment of this config"),
    ({"pre": tiny(), "down": down(model={"name": "mlp1d", "options": {"hidden": 16}, "pretrained": "pre"})},
     "a pre-trained network must be the same architecture"),
    ({"a": down("b"), "b": down("a")}, "pre-training runs in a cycle (a -> b -> a)"),
    ({"a": down("a")}, "pre-training runs in a cycle (a -> a)"),
    ({"pre": tiny(), "down": down(seeds=[0, 3])}, "'pre' has no runs of seeds [3]"),
])
def test_bad_links_are_one_line_errors(tmp_path, experiments, fragment):
    with pytest.raises(LTHError) as e:
        load(config(**experiments), SCHEMA, "c.yaml", cwd=tmp_path)
    assert fragment in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_theta_0_and_the_rewind_point_are_the_pretrained_network_bitwise(tmp_path, data_dir):
    _, exps = load(config(pre=tiny(), down=down()), SCHEMA, "c.yaml", cwd=tmp_path)
    ctxs = {}
    for name in ("pre", "down"):
        plan = plan_of(name, exps[name].thaw(), tmp_path / "results" / name, {"data_dir": str(data_dir)})
        plan.write()
        ctxs[name] = Context(plan, torch.device("cpu"))
    pre, dn = ctxs["pre"], ctxs["down"]
    with pytest.raises(LTHError, match="file not found"):
        dn.run(dn.plan.jobs()[0])  # the pre-trained network does not exist yet
    pre.run(pre.plan.jobs()[0])
    for job in dn.plan.jobs():
        dn.run(job)
    trained = artifacts.load_tensors(pre.plan.layout.final(RunKey(0, 0, "dense")))
    theta_0 = artifacts.load_tensors(dn.plan.layout.rewind(0, 0))
    assert theta_0.keys() == trained.keys() and all(torch.equal(theta_0[k], trained[k]) for k in trained)
    assert dn.plan.inputs(dn.plan.jobs()[0])["runs"] == [pre.plan.layout.metrics(RunKey(0, 0, "dense"))]
    # the ticket rewinds to the pre-trained weights (under its mask); reinit starts elsewhere
    mask = artifacts.load_tensors(dn.plan.layout.mask(RunKey(0, 1, "ticket")))
    ticket = start_state(dn, RunKey(0, 1, "ticket")).model.state_dict()
    assert all(torch.equal(ticket[k], theta_0[k] * mask[k]) for k in mask)
    reinit = start_state(dn, RunKey(0, 1, "reinit")).model.state_dict()
    assert not torch.equal(reinit["linear1.weight"], theta_0["linear1.weight"] * mask["linear1.weight"])


def test_a_new_head_is_fresh_and_another_architecture_is_refused_by_layer(tmp_path):
    source = build_model("mlp1d", (40,), 10, seed=1, hidden=32)
    path = tmp_path / "pre.safetensors"
    artifacts.save_tensors(path, source.state_dict())
    target = build_model("mlp1d", (40,), 3, seed=2, hidden=32)
    head = [n for n, m in target.named_modules() if isinstance(m, torch.nn.Linear)][-1]
    own_head = target.state_dict()[f"{head}.weight"].clone()
    load_into(target, artifacts.load_tensors(path), head, str(path))
    for name, value in target.state_dict().items():
        if name.startswith(f"{head}."):
            continue
        assert torch.equal(value, source.state_dict()[name])
    assert torch.equal(target.state_dict()[f"{head}.weight"], own_head)
    wider = build_model("mlp1d", (40,), 10, seed=2, hidden=48)
    with pytest.raises(LTHError, match=r"layer '.*' is \(32, 40\) there, \(48, 40\) here"):
        load_into(wider, artifacts.load_tensors(path), head, str(path))


def grammar(task, **options):
    return {"name": "grammar", "val_size": 50,
            "options": {"task": task, "seq_len": 12, "vocab": 18, "n_train": 250, "n_test": 100, **options}}


def test_a_pretrained_ticket_transfers_to_another_task_with_identical_per_layer_counts(tmp_path):
    """Chen et al. 2020 in small: an encoder pre-trained on masked tokens, IMP on one downstream task
    rewinding to the pre-trained weights, its ticket fine-tuned on another task of the same language."""
    from lth.data.fetch import fetch
    from lth.pruning import masks

    encoder = {"name": "encoder", "options": {"dim": 16, "heads": 2, "layers": 1}}
    training = {"optimizer": "adamw", "lr": 0.002, "batch_size": 50, "iterations": 30, "eval_every": 15}
    pre = tiny({"dataset": grammar("mlm"), "model": encoder, "training": training, "pruning": {"levels": 0}})
    agree = tiny({"dataset": grammar("agreement"), "model": {**encoder, "pretrained": "pre"}, "training": training,
                  "pruning": {"strategy": "layerwise", "rates": {"fc": 0.5}, "exclude": ["embed", "pos", "out"],
                              "levels": 1},
                  "variants": ["ticket"],
                  "transfer": {"targets": {"topic": {"dataset": grammar("topic")}}, "variants": ["ticket_transfer"]}})
    _, exps = load(config(pre=pre, agree=agree), SCHEMA, "c.yaml", cwd=tmp_path)
    data = tmp_path / "data"
    for d in (pre["dataset"], agree["dataset"], grammar("topic")):
        fetch(d["name"], data, options=d["options"])
    ctxs = {}
    for name in ("pre", "agree"):
        plan = plan_of(name, exps[name].thaw(), tmp_path / "results" / name, {"data_dir": str(data)})
        plan.write()
        ctxs[name] = ctx = Context(plan, torch.device("cpu"))
        for job in plan.jobs():
            ctx.run(job)
    L = ctxs["agree"].plan.layout
    source = artifacts.load_tensors(L.mask(RunKey(0, 1, "ticket")))
    moved = artifacts.load_tensors(L.mask(RunKey(0, 1, "ticket_transfer", "topic")))
    same = {k: v for k, v in masks.counts(moved).items() if not k.startswith("out.")}
    assert same == {k: v for k, v in masks.counts(source).items() if not k.startswith("out.")}
    assert all(torch.equal(moved[k], source[k]) for k in source if not k.startswith("out."))
    assert masks.counts(source)["blocks.0.fc1.weight"] == source["blocks.0.fc1.weight"].numel() // 2
    # the transferred ticket starts from the pre-trained weights, with the topic task's own head
    theta_0 = artifacts.load_tensors(L.rewind(0, 0))
    trained = artifacts.load_tensors(ctxs["pre"].plan.layout.final(RunKey(0, 0, "dense")))
    assert all(torch.equal(theta_0[k], trained[k]) for k in trained if not k.startswith("out."))
