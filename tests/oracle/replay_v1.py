"""The replay output as built before issue 14, kept as a test oracle (not used by streamlb itself).

* :func:`to_json` — the JSON of design.md §5 built the old way: the whole object in memory, the ``bgp`` map with a
  fresh list per node (``bgp_map_v1``), then ``msgspec.json.format(encode(obj, order="sorted"), indent=2)``;
* :func:`state_hash_v1` — the version-1 state hash: SHA-256 of the msgpack of the expanded node -> peer -> prefix map
  with the per-Service decisions (O(nodes × peers × prefixes)), kept to show what version 2 replaced.

Both read only the public per-Service plan records of :mod:`reconciler.planning`.
"""

from __future__ import annotations

import hashlib
import heapq
from typing import Any

import msgspec

from reconciler import bgpplan, decisions, planning


def bgp_map_v1(state) -> dict:
    plan = planning.ensure(state)
    local_idx: dict[str, list] = {}
    cluster_keys: list = []
    for key in sorted(plan.bgp):
        rec = plan.bgp[key]
        if rec.local_only:
            for n in sorted(rec.local):
                local_idx.setdefault(n, []).append(key)
        else:
            cluster_keys.append(key)
    groups: dict[tuple, tuple] = {}
    out = {}
    for node in planning._node_names(state):
        info = plan.nodes.get(node)
        if info is None or info.problem is not None:
            continue
        sig = (info.bgp, info.peers)
        if sig not in groups:
            entries = [e for key in cluster_keys for e in planning._bgp_for_node(plan, key, node, info)[1]]
            raw = bgpplan.merge_raw(entries)
            order = sorted(raw)
            items = {k: _item(k, raw[k]) for k in order}
            groups[sig] = (raw, order, items)
        raw, order, items = groups[sig]
        extra = [e for key in local_idx.get(node, ()) for e in planning._bgp_for_node(plan, key, node, info)[1]]
        if extra:
            touched = bgpplan.merge_raw(extra, into={k: raw[k] for k in {(e[0], e[1]) for e in extra} if k in raw})
            new_keys = sorted(k for k in touched if k not in raw)
            keys = list(heapq.merge(order, new_keys)) if new_keys else order
            peers = _lists(keys, items, {k: _item(k, v) for k, v in touched.items()})
        else:
            peers = _lists(order, items, {})
        if peers:
            out[node] = peers
    return out


def _item(key, value) -> dict:
    _, lp, cs = value
    return {"prefix": bgpplan.prefix_text(key[1]), "local_pref": lp or None,
            "communities": sorted(cs, key=bgpplan.community_key)}


def _lists(keys, items, overrides) -> dict:
    peers: dict[str, list] = {}
    for k in keys:
        item = overrides.get(k) or items[k]
        peers.setdefault(k[0], []).append(item)
    return peers


def to_json_obj(result) -> dict[str, Any]:
    st = result.state
    return {
        "events_applied": result.events_applied,
        "ignored": dict(sorted(result.ignored.items())),
        "state_hash": decisions.state_hash(st),
        "config": decisions.config(st),
        "services": decisions.services(st),
        "bgp": bgp_map_v1(st),
        "rejected": result.rejected,
    }


def to_json(result) -> bytes:
    return msgspec.json.format(msgspec.json.encode(to_json_obj(result), order="sorted"), indent=2) + b"\n"


_enc = msgspec.msgpack.Encoder(order="sorted")


def state_hash_v1(state) -> str:
    canonical = {"config": decisions.config(state), "services": decisions.services(state, with_events=False),
                 "bgp": bgp_map_v1(state)}
    return hashlib.sha256(_enc.encode(canonical)).hexdigest()


def without_hash(text: bytes) -> bytes:
    """The output with its ``state_hash`` line blanked (the hash encoding changed with snapshot version 2)."""
    lines = text.split(b"\n")
    return b"\n".join(b'  "state_hash": "-",' if ln.startswith(b'  "state_hash": ') else ln for ln in lines)
