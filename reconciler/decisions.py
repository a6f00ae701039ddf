"""Canonical decisions: the replay JSON body (design.md §5) and the state hash (design.md §4).

The state hash (encoding version :data:`HASH_VERSION`, versioned with the snapshot format) is SHA-256 over the
msgpack encoding of the decisions: configuration validity and errors, then per Service (key order) its ingress,
pool, reason, L2 owners and the digest of its BGP record (:func:`reconciler.planning.hash_rows`: per outcome —
peer, family, aggregation length, LOCAL_PREF, communities — the set of nodes sending it, a set shared by many
Services hashed once). Cost O(Services + nodes × peers); the expanded node -> peer -> prefix map (what version 1
hashed) is never built. Positions, counters and the human event history are not part of it, so a file replay and
a Redis replay hash equal.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from reconciler import planning
from reconciler.state import State

_encoder = msgspec.msgpack.Encoder(order="sorted")


def services(state: State, with_events: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in sorted(state.services):
        dec = state.services[key]
        l2 = planning.l2_map(state, key)
        entry: dict[str, Any] = {"ingress": list(dec.ingress), "pool": dec.pool, "reason": dec.reason, "l2": l2}
        if with_events:
            entry["events"] = [{"type": t, "reason": r, "message": m} for t, r, m in dec.events]
        out[key] = entry
    return out


def bgp(state: State) -> dict[str, Any]:
    """node -> peer -> advertisements (design.md §5), from :mod:`reconciler.planning`."""
    return planning.bgp_map(state)


def config(state: State) -> dict[str, Any]:
    return {"valid": state.config_valid, "errors": list(state.config_errors)}


HASH_VERSION = 2


def canonical(state: State) -> list[Any]:
    """The hashed part of the decisions (see the module docstring)."""
    return ["streamlb-state", HASH_VERSION, config(state), planning.hash_rows(state)]  # as hash_of encodes it


def state_hash(state: State) -> str:
    return hash_of(config(state), planning.hash_rows(state))


def hash_of(cfg: dict[str, Any], rows: list[tuple]) -> str:
    """The state hash from the configuration part and :func:`reconciler.planning.hash_rows`."""
    return hashlib.sha256(_encoder.encode(["streamlb-state", HASH_VERSION, cfg, rows])).hexdigest()


def services_of(state: State, rows: list[tuple], with_events: bool = True) -> dict[str, Any]:
    """:func:`services` from the rows of :func:`reconciler.planning.hash_rows` (the same per-Service records: a
    replay hashes and prints them in one pass)."""
    out: dict[str, Any] = {}
    decs = state.services
    for key, ingress, pool, reason, l2_rows, _ in rows:
        entry: dict[str, Any] = {
            "ingress": list(ingress), "pool": pool, "reason": reason,
            "l2": {ip: {"node": node, "reason": why} for ip, node, why in l2_rows},
        }
        if with_events:
            entry["events"] = [{"type": t, "reason": r, "message": m} for t, r, m in decs[key].events]
        out[key] = entry
    return out
