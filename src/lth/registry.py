"""Registries of named parts (models, datasets, pruning scores, ...), free of torch.

A part is registered by one line in `lth.parts`: its name, where its code lives ("module:attribute",
imported only when the part is used), the config keys it adds (JSON-schema properties, validated
with the experiment) and the static facts the workflow needs at parse time (a dataset's input
shape, say). So parsing the workflow imports no torch, and a new part is a new file plus one line.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from lth.errors import LTHError


@dataclass(frozen=True)
class Part:
    name: str
    target: str  # "package.module:attribute"
    keys: Mapping[str, Any] = field(default_factory=dict)  # JSON-schema properties this part adds to its section
    info: Mapping[str, Any] = field(default_factory=dict)  # static facts, readable without importing the part

    def load(self) -> Any:
        """The registered object (a class or function), imported now."""
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)

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
        part = Part(name, target, dict(keys or {}), info)
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
            clash = set(part.keys) & set(out)
            if clash:
                raise ValueError(f"{self.kind} '{part.name}' declares config keys another part declares: {clash}")
            out.update(part.keys)
        return out
