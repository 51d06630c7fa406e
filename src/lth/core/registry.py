"""Registries of named parts (models, datasets, pruning scores, ...), free of torch.

A part is registered by one line in `lth.core.parts`: its name, where its code lives
("module:attribute", imported only when the part is used), the config keys it adds (JSON-schema
properties, validated with the experiment) and the static facts the workflow needs at parse time
(a dataset's input shape, say). So parsing the workflow imports no torch, and a new part is a new
file plus one line. A part's other hooks are attributes of its module (`Part.hook`), or named by
"module:attribute" in its facts (`load_target`).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from lth.core.errors import LTHError


@dataclass(frozen=True)
class Part:
    name: str
    target: str  # "package.module:attribute"
    # JSON-schema properties this part adds to its section, or "module:attribute" naming them (a
    # mapping, or a function that returns one: read when the schema is built, from a torch-free module)
    keys: Mapping[str, Any] | str = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)  # static facts, readable without importing the part

    def load(self) -> Any:
        """The registered object (a class or function), imported now."""
        return load_target(self.target)

    def hook(self, name: str) -> Any:
        """Another attribute of the part's module (an analysis's `jobs`, `train`, `figure`), or None."""
        return getattr(importlib.import_module(self.target.partition(":")[0]), name, None)

    def config_keys(self) -> Mapping[str, Any]:
        """The JSON-schema properties the part adds (`keys`, loaded if it names them)."""
        if not isinstance(self.keys, str):
            return self.keys
        keys = load_target(self.keys)
        return keys() if callable(keys) else keys

    def __getattr__(self, name: str) -> Any:
        try:
            return self.info[name]
        except KeyError:
            raise AttributeError(name) from None


class Registry(Mapping[str, Part]):
    """Name -> Part for one kind of part; an unknown name is an LTHError listing the known ones."""

    def __init__(self, kind: str):
        self.kind = kind
        self._parts: dict[str, Part] = {}

    def add(self, name: str, target: str, keys: Mapping[str, Any] | None = None, **info: Any) -> Part:
        if name in self._parts:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        part = Part(name, target, keys if isinstance(keys, str) else dict(keys or {}), info)
        self._parts[name] = part
        return part

    def __getitem__(self, name: str) -> Part:
        try:
            return self._parts[name]
        except (KeyError, TypeError):
            raise LTHError(f"unknown {self.kind} {name!r}; known: {', '.join(self._parts)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._parts)

    def __len__(self) -> int:
        return len(self._parts)

    def __contains__(self, name: object) -> bool:
        return name in self._parts

    def keys_schema(self) -> dict[str, Any]:
        """The config keys every part of this registry adds, merged (one section's properties)."""
        out: dict[str, Any] = {}
        for part in self._parts.values():
            keys = part.config_keys()
            clash = set(keys) & set(out)
            if clash:
                raise ValueError(f"{self.kind} '{part.name}' declares config keys another part declares: {clash}")
            out.update(keys)
        return out


def load_target(target: str) -> Any:
    """The object a "package.module:attribute" string names, imported now."""
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)
