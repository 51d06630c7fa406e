"""Pre-trained starting points (model.pretrained, lth.pretrained): linked when the config is read,
theta_0 loaded bitwise from the other experiment's trained dense network, refused when it is not
the same architecture."""

from pathlib import Path

import pytest
import torch

from conftest import tiny
from lth import artifacts
from lth.config import load
from lth.errors import LTHError
from lth.jobs import Context
from lth.layout import RunKey
from lth.models import build_model
from lth.plan import plan_of
from lth.pretrained import load_into
from lth.settings import fingerprints
from lth.start import start_state

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


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
    load_into(target, path, head)
    for name, value in target.state_dict().items():
        if name.startswith(f"{head}."):
            continue
        assert torch.equal(value, source.state_dict()[name])
    assert torch.equal(target.state_dict()[f"{head}.weight"], own_head)
    wider = build_model("mlp1d", (40,), 10, seed=2, hidden=48)
    with pytest.raises(LTHError, match=r"layer '.*' is \(32, 40\) there, \(48, 40\) here"):
        load_into(wider, path, head)
