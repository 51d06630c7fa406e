"""Settings: resolved once, frozen; registered parts declare their names and keys."""

import pytest

from lth.core import parts
from lth.core.errors import LTHError
from lth.core.registry import Registry
from lth.plan.settings import Settings, resolve

from conftest import TINY


def test_resolved_settings_are_frozen_and_thaw_back_to_plain_data():
    s = resolve(TINY)
    assert isinstance(s, Settings) and s.training.lr == s["training"]["lr"] == 0.01
    assert isinstance(s.seeds, tuple)
    with pytest.raises(AttributeError):
        s.seeds = (1,)
    with pytest.raises(TypeError):
        s.training["lr"] = 1.0
    assert resolve(s.thaw()) == s and isinstance(s.thaw()["seeds"], list)


def test_registered_names_and_keys_are_in_the_schema():
    s = resolve({"pruning": {"strategy": "global", "score": "random"}})
    assert s.pruning.global_rate == 0.2 and s.pruning.rates["fc"] == 0.2  # keys declared by the selections
    with pytest.raises(LTHError, match="pruning.global_rate: 1.5 is greater than or equal to the maximum"):
        resolve({"pruning": {"global_rate": 1.5}})


@pytest.mark.parametrize("raw, message", [
    ({"model": {"name": "conv2"}}, "model 'conv2' cannot take input_shape (40,)"),
    ({"model": {"options": {"width": 3}}}, "unknown option 'width' for model 'mlp1d' (it takes: hidden)"),
    ({"model": {"options": {"hidden": 0}}}, "option 'hidden' of model 'mlp1d' must be a positive integer"),
    ({"kind": "strong"}, "kind: 'strong' is not one of ['imp', 'oneshot']"),
    (None, "an experiment must be a mapping, got NoneType"),
])
def test_what_only_the_registries_know_is_refused_before_any_job(raw, message):
    with pytest.raises(LTHError) as e:
        resolve(raw, where="config: experiments.x")
    assert message in str(e.value) and str(e.value).startswith("config: experiments.x")


def test_a_registry_names_the_known_parts_and_loads_lazily():
    r = Registry("widget")
    r.add("json", "json:dumps", keys={"indent": {"type": "integer"}}, colour="blue")
    assert r["json"].load()([1]) == "[1]" and r["json"].colour == "blue"
    assert r.keys_schema() == {"indent": {"type": "integer"}}
    with pytest.raises(LTHError, match="unknown widget 'yaml'; known: json"):
        r["yaml"]
    with pytest.raises(ValueError, match="twice"):
        r.add("json", "json:loads")
    assert set(parts.MODELS) >= {"mlp1d", "resnet20"} and parts.DATASETS["cifar10"].input_shape == (3, 32, 32)
