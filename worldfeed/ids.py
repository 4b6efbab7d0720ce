"""Derived identifiers, seeded RNGs and state hashing.

Determinism rules (DESIGN.md): every random choice draws from an RNG derived from
``(run_seed, tick, npc_id, purpose)``; ids are hashes of shard-independent keys;
nothing reads global random state, wall-clock time or arrival order.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import orjson
import xxhash

SEP = "\x1f"


def stable_hash64(*parts: object) -> int:
    """64-bit xxh3 of the parts, each followed by a separator that cannot occur in them."""
    return xxhash.xxh3_64_intdigest("".join([f"{part}{SEP}" for part in parts]).encode())


def hash_prefix(*parts: object) -> str:
    """The leading parts of a :func:`stable_hash64` key, to extend in a hot loop:
    ``stable_hash64(a, b, c) == hash_text(hash_prefix(a, b) + f"{c}\x1f")``."""
    return "".join([f"{part}{SEP}" for part in parts])


def hash_text(text: str) -> int:
    """xxh3 of a key built with :func:`hash_prefix`."""
    return xxhash.xxh3_64_intdigest(text.encode())


def derive_id(prefix: str, *parts: object) -> str:
    """A readable, derived id: ``prefix`` + 16 hex digits of the hash of the parts."""
    return f"{prefix}_{stable_hash64(prefix, *parts):016x}"


def rng_for(run_seed: int, tick: int, npc_id: str, purpose: str) -> random.Random:
    """A private RNG for one decision; the same inputs always give the same stream."""
    return random.Random(stable_hash64(run_seed, tick, npc_id, purpose))  # noqa: S311 - simulation, not crypto


def state_digest(key: str, state: object) -> int:
    """Hash of one entity's state, canonical JSON (sorted keys) so dict order never matters."""
    return stable_hash64(key, orjson.dumps(state, option=orjson.OPT_SORT_KEYS).decode())


MASK64 = (1 << 64) - 1


def combine_digests(digests: Iterable[int]) -> int:
    """Order-independent combination (sum mod 2**64): shard sums add up to the world sum."""
    total = 0
    for d in digests:
        total = (total + d) & MASK64
    return total
