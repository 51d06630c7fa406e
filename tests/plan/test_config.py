"""Bad configs, as a new user writes them: each refused before any job, in one line that names the
config file, the key and the value (lth.plan.config; a few go through Snakemake in test_workflow.py)."""

import copy
from pathlib import Path

import pytest

from lth.core.errors import LTHError
from lth.plan.config import load

from conftest import TINY

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def exp(**changes):
    """TINY with `changes` ("section.key": value, or "key": value) applied."""
    s = copy.deepcopy(TINY)
    for key, value in changes.items():
        section, _, sub = key.partition(".")
        if sub:
            s.setdefault(section, {})[sub] = value
        else:
            s[section] = value
    return s


def top(**changes):
    return {"experiments": {"x": exp()}, **changes}


def one(raw):
    return {"experiments": {"x": raw}}


# (what a user did, the config, what the one line must say besides the file name)
BAD = [
    ("unknown top-level key", top(colour="blue"), ["'colour' was unexpected"]),
    ("no threads", top(threads=0), ["threads", "0 is less than the minimum"]),
    ("threads as a word", top(threads="two"), ["threads", "'two' is not of type 'integer'"]),
    ("a TPU", top(device="tpu"), ["device", "'tpu' does not match"]),
    ("a command in device", top(device="$(touch /tmp/x)cpu"), ["device", "$(touch /tmp/x)cpu"]),
    ("download as a word", top(download="yes"), ["download", "'yes' is not of type 'boolean'"]),
    ("data outside the project", top(data_dir="../../elsewhere"), ["data_dir", "../../elsewhere", "outside"]),
    ("results at an absolute path", top(results_dir="/srv/elsewhere"), ["results_dir", "/srv/elsewhere", "outside"]),
    ("braces in a folder", top(reports_dir="r{exp}"), ["reports_dir", "r{exp}", "braces"]),
    ("an empty folder name", top(results_dir=""), ["results_dir", "'' should be non-empty"]),
    ("tracking as a word", top(tracking={"enabled": "no"}), ["tracking.enabled", "'no'"]),
    ("a number as tracking URI", top(tracking={"uri": 5}), ["tracking.uri", "5 is not of type"]),
    ("a misspelled tracking key", top(tracking={"livee": True}), ["tracking", "'livee' was unexpected"]),
    ("a tracking password", top(tracking={"password": "hunter2"}), ["tracking.password", "MLFLOW_TRACKING_PASSWORD"]),
    ("credentials in the tracking URI", top(tracking={"uri": "http://ann:hunter2@login1:5000"}),
     ["tracking.uri", "user name or password", "MLFLOW_TRACKING_USERNAME", "environment"]),
    ("no experiment", {"experiments": {}}, ["experiments", "{} should be non-empty"]),
    ("experiments: null", {"experiments": None}, ["experiments", "None is not of type 'object'"]),
    ("no experiments key", {"threads": 1}, ["'experiments' is a required property"]),
    ("a slash in a name", {"experiments": {"a/b": exp()}}, ["experiments", "'a/b' does not match"]),
    ("a space in a name", {"experiments": {"a b": exp()}}, ["experiments", "'a b' does not match"]),
    ("a name that climbs", {"experiments": {"..": exp()}}, ["experiments", "'..' does not match"]),
    ("a null experiment", one(None), ["experiments.x", "None is not of type 'object'"]),
    ("a list as experiment", one([1, 2]), ["experiments.x", "[1, 2] is not of type 'object'"]),
    ("a misspelled key", one(exp(optimiser="adam")), ["experiments.x", "'optimiser' was unexpected"]),
    ("an unknown dataset", one(exp(**{"dataset.name": "imagenet"})), ["dataset.name", "'imagenet'"]),
    ("a negative val_size", one(exp(**{"dataset.val_size": -1})), ["dataset.val_size", "-1"]),
    ("val_size of all the data", one(exp(**{"dataset.val_size": 4000})), ["dataset.val_size", "4000"]),
    ("val_size leaving less than a batch", one(exp(**{"dataset.val_size": 3950})),
     ["dataset.val_size", "3950", "batch_size = 100"]),
    ("options for digits", one(exp(**{"dataset.name": "digits", "model.name": "conv2",
                                    "dataset.options": {"seed": 1}})), ["dataset.options", "'seed'", "none"]),
    ("a misspelled dataset option", one(exp(**{"dataset.options": {"sed": 43}})), ["dataset.options", "'sed'"]),
    ("a dataset option of the wrong kind", one(exp(**{"dataset.options": {"num_samples": "many"}})),
     ["dataset.options.num_samples", "'many'", "integer"]),
    ("a negative split seed", one(exp(**{"dataset.split_seed": -3})), ["dataset.split_seed", "-3"]),
    ("an unknown model", one(exp(**{"model.name": "resnet9000"})), ["model.name", "'resnet9000'"]),
    ("a conv net on 1-D data", one(exp(**{"model.name": "conv2", "model.options": {}})),
     ["model", "'conv2'", "(40,)"]),
    ("an option of another model", one(exp(**{"model.options": {"width": 3}})), ["model", "'width'", "mlp1d"]),
    ("a zero-width model", one(exp(**{"model.options": {"hidden": 0}})), ["model", "'hidden'", "0"]),
    ("a fractional width", one(exp(**{"model.options": {"hidden": 2.5}})), ["model", "'hidden'", "2.5"]),
    ("a negative learning rate", one(exp(**{"training.lr": -1})), ["training.lr", "-1"]),
    ("a zero learning rate", one(exp(**{"training.lr": 0})), ["training.lr", "0"]),
    ("an unknown optimizer", one(exp(**{"training.optimizer": "rmsprop"})), ["training.optimizer", "'rmsprop'"]),
    ("a zero batch", one(exp(**{"training.batch_size": 0})), ["training.batch_size", "0"]),
    ("a batch larger than the data", one(exp(**{"training.batch_size": 5000})), ["dataset.val_size", "5000"]),
    ("a trillion iterations", one(exp(**{"training.iterations": 10**12})),
     ["training.iterations", "1000000000000", "maximum"]),
    ("no iterations", one(exp(**{"training.iterations": 0})), ["training.iterations", "0"]),
    ("a milestone past the budget", one(exp(**{"training.milestones": [2000]})), ["training.milestones", "2000"]),
    ("a warm-up past the budget", one(exp(**{"training.warmup": 5000})), ["training.warmup", "5000"]),
    ("momentum above 1", one(exp(**{"training.momentum": 1.5})), ["training.momentum", "1.5"]),
    ("a zero decay factor", one(exp(**{"training.gamma": 0})), ["training.gamma", "0"]),
    ("evaluating never", one(exp(**{"training.eval_every": 0})), ["training.eval_every", "0"]),
    ("augment as a word", one(exp(**{"training.augment": "maybe"})), ["training.augment", "'maybe'"]),
    ("an unknown strategy", one(exp(**{"pruning.strategy": "magic"})), ["pruning.strategy", "'magic'"]),
    ("an unknown score", one(exp(**{"pruning.score": "snap"})), ["pruning.score", "'snap'"]),
    ("a rate above 1", one(exp(**{"pruning.rates": {"fc": 1.5, "output": 0.1}})), ["pruning.rates.fc", "1.5"]),
    ("a zero rate", one(exp(**{"pruning.rates": {"fc": 0, "output": 0.1}})), ["pruning.rates.fc", "0"]),
    ("no rate for the output layer", one(exp(**{"pruning.rates": {"fc": 0.2}})), ["pruning.rates", "output"]),
    ("a rate for a layer that does not exist", one(exp(**{"pruning.rates": {"fc": 0.2, "output": 0.1,
                                                                            "nolayer": 0.5}})),
     ["pruning.rates", "'nolayer'"]),
    ("excluding a layer that does not exist", one(exp(**{"pruning.exclude": ["not_a_layer"]})),
     ["pruning.exclude", "'not_a_layer'"]),
    ("a global rate of 1", one(exp(**{"pruning.global_rate": 1.0})), ["pruning.global_rate", "1.0"]),
    ("negative levels", one(exp(**{"pruning.levels": -1})), ["pruning.levels", "-1"]),
    ("rewinding past the budget", one(exp(rewind_iteration=1500)), ["rewind_iteration", "1500"]),
    ("a negative rewind point", one(exp(rewind_iteration=-1)), ["rewind_iteration", "-1"]),
    ("an unknown variant", one(exp(variants=["ticket", "magic"])), ["variants.1", "'magic'"]),
    ("a variant twice", one(exp(variants=["ticket", "ticket"])), ["variants", "non-unique"]),
    ("no seeds", one(exp(seeds=[])), ["seeds", "[] should be non-empty"]),
    ("a negative seed", one(exp(seeds=[-1])), ["seeds.0", "-1"]),
    ("seeds as a word", one(exp(seeds="0")), ["seeds", "'0' is not of type 'array'"]),
    ("a target that cannot be adapted", one(exp(transfer={"targets": {"d": {"dataset": {"name": "digits"}}}})),
     ["transfer.targets.d", "(1, 8, 8)"]),
    ("transferring a level that is not pruned", one(exp(transfer={
        "targets": {"t": {"dataset": {"name": "mnist1d"}}}, "levels": [99]})), ["transfer.levels", "99"]),
    ("a space in a target name", one(exp(transfer={"targets": {"a b": {"dataset": {"name": "mnist1d"}}}})),
     ["transfer.targets", "'a b' does not match"]),
    ("an unknown transfer variant", one(exp(transfer={"targets": {"t": {"dataset": {"name": "mnist1d"}}},
                                                      "variants": ["magic"]})), ["transfer.variants.0", "'magic'"]),
    ("transfer without tickets", one(exp(variants=["lr_rewind"], transfer={
        "targets": {"t": {"dataset": {"name": "mnist1d"}}}})), ["transfer", "'ticket'"]),
    ("a target without a dataset", one(exp(transfer={"targets": {"t": {}}})),
     ["transfer.targets.t", "'dataset' is a required property"]),
    ("an unknown experiment kind", one(exp(kind="strong")), ["kind", "'strong'"]),
    ("a comparison of an experiment the config lacks", top(comparisons={"c": {"experiments": ["x", "y"]}}),
     ["comparisons.c.experiments: ['y'] are not experiments of this config"]),
    ("label noise of 1", one(exp(**{"dataset.label_noise": 1})), ["dataset.label_noise", "1 is greater than or equal"]),
    ("a modulus that is not prime", one(exp(dataset={"name": "modular", "val_size": 0, "options": {"p": 21}},
                                            model={"name": "mod_mlp"})), ["p must be a prime >= 3, got 21"]),
    ("a training fraction of 1", one(exp(dataset={"name": "modular", "val_size": 0,
                                                  "options": {"train_fraction": 1}},
                                         model={"name": "mod_mlp"})), ["train_fraction", "0 or 1"]),
    ("a support larger than the dimension", one(exp(dataset={"name": "sparse_linear", "val_size": 10, "options": {
        "dim": 20, "support": 30}}, model={"name": "linear"})), ["support 30 is larger than the dimension 20"]),
    ("an unknown analysis", one(exp(analyses=["nope"])), ["analyses.0", "'nope'"]),
    ("MNIST without download", one(exp(**{"dataset.name": "mnist", "model.name": "lenet_300_100",
                                          "model.options": {}})),
     ["dataset.name", "'mnist'", "download"]),
    ("a target to download without download", one(exp(**{"model.name": "lenet_300_100", "model.options": {},
                                                        "dataset.name": "digits"},
                                                     transfer={"targets": {"f": {"dataset": {"name": "fashionmnist"}}}})),
     ["transfer.targets.f.dataset.name", "'fashionmnist'", "download"]),
]


def test_there_are_more_than_fifty_distinct_bad_configs():
    assert len({what for what, _, _ in BAD}) == len(BAD) >= 50


@pytest.mark.parametrize("what, config, expected", BAD, ids=[what for what, _, _ in BAD])
def test_a_bad_config_is_one_line_naming_file_key_and_value(tmp_path, what, config, expected):
    with pytest.raises(LTHError) as e:
        load(config, SCHEMA, "config/mine.yaml", cwd=tmp_path)
    message = str(e.value)
    assert message.startswith("config/mine.yaml: ") and "\n" not in message and len(message) < 400, message
    for fragment in expected:
        assert fragment in message, message
    assert not any(tmp_path.iterdir())  # nothing written


def test_a_refused_credential_is_never_repeated(tmp_path):
    for tracking in ({"password": "hunter2"}, {"uri": "https://ann:hunter2@login1:5000"}, {"token": "hunter2"}):
        with pytest.raises(LTHError) as e:
            load(top(tracking=tracking), SCHEMA, "config/mine.yaml", cwd=tmp_path)
        assert "hunter2" not in str(e.value) and "in the environment" in str(e.value)


def test_the_default_config_and_every_preset_pass(tmp_path):
    import yaml

    root = SCHEMA.parents[2]
    for path in [root / "config" / "config.yaml", *sorted((root / "config" / "presets").glob("*.yaml"))]:
        config = yaml.safe_load(path.read_text())
        config["download"] = True  # presets that download datasets are planned as their README says
        load(config, SCHEMA, str(path), cwd=tmp_path)


def test_a_device_or_precision_the_machine_cannot_do_is_refused_before_any_job(monkeypatch):
    """Read from nvidia-smi's list (lth.core.gpus) when the workflow is parsed: no torch."""
    from lth.core.gpus import GPU

    gpus = []
    monkeypatch.setattr("lth.plan.config.visible_gpus", lambda: gpus)
    with pytest.raises(LTHError, match=r"^c.yaml: device: 'cuda', but no CUDA device is visible"):
        load(top(device="cuda"), SCHEMA, "c.yaml")
    with pytest.raises(LTHError, match=r"^c.yaml: experiments.x.training.precision: tf32 is a CUDA format"):
        load(one(exp(**{"training.precision": "tf32"})), SCHEMA, "c.yaml")
    gpus.append(GPU(0, "Tesla V100-SXM2-16GB", (7, 0)))
    load(one(exp(**{"training.precision": "tf32"})), SCHEMA, "c.yaml")  # a GPU: tf32 is fine
    with pytest.raises(LTHError, match=r"precision: bf16 needs a GPU of compute capability 8.0 .* V100.* has 7.0"):
        load(one(exp(**{"training.precision": "bf16"})), SCHEMA, "c.yaml")
    load({**one(exp(**{"training.precision": "bf16"})), "device": "cpu"}, SCHEMA, "c.yaml")  # CPU autocast


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch, tmp_path):
    from lth.core import gpus

    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\nprintf '0, NVIDIA H100 80GB HBM3, 9.0\\n1, NVIDIA A100-SXM4-40GB, 8.0\\n'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert [g.name for g in gpus.visible_gpus()] == ["NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert [(g.index, g.compute_capability, g.has_bf16) for g in gpus.visible_gpus()] == [(1, (8, 0), True)]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpus.visible_gpus() == []
