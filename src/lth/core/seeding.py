"""Seeds derived from names, so every random choice is fixed by the experiment seed alone."""

from __future__ import annotations

import hashlib


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from e.g. (seed, "reinit", level): stable across processes and Python versions."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)
