"""Per-stage fingerprints: each stage's artifacts live in a folder keyed by a hash of only the
settings that stage depends on, so a dense run survives a change of pruning rates or a new rewind
point. Fingerprints hash the settings that differ from the defaults (as OpenLTH does), so a key
added later with a default leaves existing results valid. Torch-free.

dense: dataset, model, training (less how often it checkpoints; augmentation as it applies), the
excluded layers and whether biases are pruned (the dense mask); then the experiment kind's own
stages (lth.core.parts.EXPERIMENT_KINDS: a kind's `stage_fingerprints`), each analysis that
trains runs of its own, and transfer:<target>: the kind's pruned runs + the target's dataset.
Which seeds, levels, variants and targets exist is in none of them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import cache
from typing import Any

from lth.core import parts
from lth.plan.facts import augments
from lth.plan.settings import Settings, resolve, thaw

REMOVED = "<removed>"
NOT_RESULTS = ("checkpoint_every",)  # training keys that change how a run is written, not its results


@cache
def defaults() -> Settings:
    """The settings of an empty experiment: what every fingerprint is a difference from."""
    return resolve({})


def diff(value: Any, default: Any) -> Any:
    """What `value` changes relative to `default`: the changed keys of nested mappings (removed ones
    marked), a whole value otherwise. Equal settings give equal diffs, different settings different ones."""
    if isinstance(value, Mapping) and isinstance(default, Mapping):
        out = {k: diff(v, default.get(k, REMOVED)) for k, v in value.items() if default.get(k, REMOVED) != v}
        out.update({k: REMOVED for k in default if k not in value})
        return out
    return thaw(value)


def digest(*parts_: Any) -> str:
    """The 12-hex-digit fingerprint of JSON-able values."""
    return hashlib.sha256(json.dumps(parts_, sort_keys=True).encode()).hexdigest()[:12]


def changed(s: Settings, *keys: str) -> dict[str, Any]:
    """Sections `keys` of `s` as their differences from the defaults."""
    d = defaults()
    return {k: diff(s[k], d[k]) for k in keys}


def score_keys(method: Mapping[str, Any]) -> tuple[str, ...]:
    """The keys a pruning method's score reads: its own, and the batch size of a data score."""
    score = parts.SCORES[method["score"]]
    return (*score.config_keys(), *(["batch"] if score.info.get("data") else []))


def dense_fingerprint(s: Settings) -> str:
    d = defaults()
    training = {k: v for k, v in s.training.items() if k not in NOT_RESULTS}
    training["augment"] = augments(s.training, s.dataset.name)  # the dataset's default, spelt out
    return digest("dense", changed(s, "dataset", "model"),
                  diff(training, {k: v for k, v in d.training.items() if k not in NOT_RESULTS}),
                  sorted(s.pruning.exclude), *(["biases pruned"] if s.pruning.biases else []))


def fingerprints(s: Settings) -> dict[str, str]:
    """Stage -> fingerprint of the settings its artifacts depend on, each including its upstream's
    (the module docstring says which)."""
    dense = dense_fingerprint(s)
    out = {"dense": dense, **parts.EXPERIMENT_KINDS[s.kind].load().stage_fingerprints(s, dense)}
    for name in s.analyses:
        part = parts.ANALYSES[name]
        if part.info.get("trains"):
            own = {k: thaw(v) for k, v in s[name].items() if k in part.info["trained_by"]}
            out[f"analysis:{name}"] = digest("analysis", name, out["imp"], own)
    for name, target in s.transfer.targets.items():
        out[f"transfer:{name}"] = digest("transfer", out["imp"], diff(target.dataset, defaults().dataset))
    return out
