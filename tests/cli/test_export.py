"""`lth export`: a ticket as one safetensors file that loads without lth into a freshly built model and
gives the masked model's logits; bad input is one line."""

import json

import pytest
import torch

from lth import cli
from lth.models import build_model
from lth.plan.layout import RunKey
from lth.pruning import masks
from lth.store import artifacts


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
    """A tiny experiment (mlp1d, two IMP levels of the ticket alone) trained once."""
    from lth.jobs import Context
    from lth.plan import plan_of

    from conftest import tiny

    root = tmp_path_factory.mktemp("export") / "exp"
    plan = plan_of("exp", tiny({"training": {"iterations": 20, "eval_every": 10}, "variants": ["ticket"]}), root,
                   {"data_dir": str(data_dir)})
    plan.write()
    ctx = Context(plan, torch.device("cpu"))
    for job in plan.jobs():
        ctx.run(job)
    return plan


def run(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def load_without_lth(path):
    """The loader of docs/guides/structured.md: safetensors and torch only (no lth import)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    state = {k: v for k, v in tensors.items() if not k.startswith("mask/")}
    mask = {k[len("mask/"):]: v for k, v in tensors.items() if k.startswith("mask/")}
    return json.loads(meta["model"]), state, mask, meta


def test_an_exported_ticket_reloads_into_a_fresh_model_with_the_masked_model_s_logits(capsys, tmp_path, trained):
    out = tmp_path / "ticket.safetensors"
    code, stdout, err = run(capsys, "export", "--results", trained.layout.root, "--seed", 0, "--level", 2,
                            "--variant", "ticket", "--out", out)
    assert code == 0 and err == "" and "weights remaining" in stdout
    config, state, mask, meta = load_without_lth(out)
    assert config == {"name": "mlp1d", "options": {"hidden": 32}, "init": "default", "input_shape": [40],
                      "num_classes": 10}
    assert (meta["format"], meta["seed"], meta["level"], meta["variant"]) == ("lth-ticket/1", "0", "2", "ticket")
    fresh = build_model(config["name"], tuple(config["input_shape"]), config["num_classes"], seed=123,
                        **config["options"])
    fresh.load_state_dict(state)
    # the masked model as lth trains it: the run's weights under its mask
    key = RunKey(0, 2, "ticket")
    reference = build_model("mlp1d", (40,), 10, seed=0, hidden=32)
    artifacts.load_weights(reference, trained.layout.final(key))
    own_mask = artifacts.load_tensors(trained.layout.mask(key))
    masks.apply_mask(reference, own_mask)
    assert mask.keys() == own_mask.keys() and all(torch.equal(mask[k], own_mask[k]) for k in mask)
    assert all((state[k][~mask[k]] == 0).all() for k in mask)
    assert float(meta["weights_remaining"]) == pytest.approx(masks.density(own_mask))
    x = torch.randn(50, 40, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x), reference.eval()(x))


def test_the_variant_defaults_to_the_ticket_and_bad_runs_are_one_line(capsys, tmp_path, trained):
    out = tmp_path / "t.safetensors"
    assert run(capsys, "export", "--results", trained.layout.root, "--seed", 0, "--level", 1, "--out", out)[0] == 0
    assert load_without_lth(out)[3]["variant"] == "ticket"
    for args, expected in ((("--level", 7), "no run seed 0, level 7, variant 'ticket' in the plan; ticket has levels "
                                            "[1, 2]"),
                           (("--level", 1, "--variant", "nope"), "variants: ['dense', 'ticket']"),
                           (("--level", 1, "--seed", 5), "no run seed 5, level 1")):
        seed = () if "--seed" in args else ("--seed", 0)
        code, _, err = run(capsys, "export", "--results", trained.layout.root, *seed, *args, "--out", tmp_path / "x")
        assert code == 2 and err.startswith("lth: error: ") and err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "x").exists()
