"""Canonical decisions: the replay JSON body (design.md §5) and the state hash (design.md §4).

The state hash is SHA-256 over the canonical msgpack encoding (sorted keys) of the decisions — per Service its
ingress, pool, reason and L2 owners; the BGP advertisements; configuration validity and errors. Positions,
counters and the human event history are not part of it, so a file replay and a Redis replay hash equal.
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


def canonical(state: State) -> dict[str, Any]:
    """The hashed part of the decisions."""
    return {"config": config(state), "services": services(state, with_events=False), "bgp": bgp(state)}


def state_hash(state: State) -> str:
    return hashlib.sha256(_encoder.encode(canonical(state))).hexdigest()
