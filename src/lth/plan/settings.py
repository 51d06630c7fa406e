"""Experiment settings: validated once, defaults filled in, frozen. No torch.

The schema (lth.plan.schema) plus the keys and names of the registered parts (lth.core.parts,
lth.plan.variants) describe what an experiment may contain; lth.plan.checks what a schema cannot
say. `resolve` returns an immutable `Settings`; the workflow writes it once to
results/<experiment>/settings.json and every job reads it from there (lth.plan.imp). Each stage's
artifacts are keyed by the fingerprint of the settings it depends on (lth.plan.fingerprints).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from lth.core.errors import LTHError
from lth.plan.checks import check_consistency
from lth.plan.schema import schema, validate


class Settings(Mapping):
    """A deeply immutable mapping (lists become tuples) with attribute access: `s.training.lr`."""

    def __init__(self, data: Mapping[str, Any]):
        object.__setattr__(self, "_data", {k: freeze(v) for k, v in data.items()})

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__") or key == "_data":  # copy and pickle look these up before __init__
            raise AttributeError(key)
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(key) from None

    def __reduce__(self):
        return (Settings, (self.thaw(),))

    def __setattr__(self, key, value):
        raise AttributeError("settings are immutable")

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Settings({self.thaw()!r})"

    def thaw(self) -> dict[str, Any]:
        """Plain dicts and lists again (for JSON, and for code that edits a copy)."""
        return thaw(self)


def freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return value if isinstance(value, Settings) else Settings(value)
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Plain dicts and lists of a frozen value."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


def resolve(raw: Mapping[str, Any], where: str = "settings") -> Settings:
    """Validated, frozen settings with defaults filled in; LTHError naming the key and value otherwise."""
    if isinstance(raw, Settings):
        raw = raw.thaw()
    if not isinstance(raw, Mapping):
        raise LTHError(f"{where}: an experiment must be a mapping, got {type(raw).__name__}")
    settings = copy.deepcopy(dict(raw))
    validate(settings, schema(), where)
    check_consistency(settings, where)
    return Settings(settings)


def read(path: str | Path) -> Any:
    """The raw settings in a YAML/JSON file of one experiment (by hand: `lth train --settings F`);
    an empty file is all defaults."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise LTHError(f"settings file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise LTHError(f"{path}: not valid YAML: {exc}") from None
    return {} if raw is None else raw

