"""Offline replay: input files -> fold -> the replay result of design.md §5 (no Redis, no network)."""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import msgspec

from events import inputs
from reconciler import decisions, fold, state as statemod
from reconciler.runtime import gcpolicy


@dataclass(slots=True)
class ReplayResult:
    state: statemod.State
    events_applied: int = 0
    records: int = 0
    ignored: Counter = field(default_factory=Counter)
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def to_json_obj(self, omit: frozenset[str] = frozenset()) -> dict[str, Any]:
        out = {
            "events_applied": self.events_applied,
            "ignored": dict(sorted(self.ignored.items())),
            "state_hash": decisions.state_hash(self.state),
            "config": decisions.config(self.state),
            "services": decisions.services(self.state),
            "rejected": self.rejected,
        }
        if "bgp" not in omit:
            out["bgp"] = decisions.bgp(self.state)
        return out

    def write_json(self, out: BinaryIO, omit: frozenset[str] = frozenset()) -> None:
        """Write the JSON object of design.md §5 to ``out``: keys sorted, indented by 2, one trailing newline —
        the bytes ``msgspec.json.format(msgspec.json.encode(obj, order="sorted"), indent=2)`` would give, but the
        ``bgp`` map is written straight from its shared lists (each list and each item formatted once)."""
        with gcpolicy.few_collections():
            self._write_json(out, omit)

    def _write_json(self, out: BinaryIO, omit: frozenset[str]) -> None:
        obj = self.to_json_obj(omit=omit | {"bgp"})
        parts: list[tuple[str, Any]] = sorted(obj.items())
        if "bgp" not in omit:
            parts.append(("bgp", None))
            parts.sort(key=lambda kv: kv[0])
        out.write(b"{\n")
        for i, (key, value) in enumerate(parts):
            out.write(b"  " + _ENC.encode(key) + b": ")
            if key == "bgp":
                _write_bgp(out, decisions.bgp(self.state))
            else:
                out.write(_fmt(value, 1))
            out.write(b",\n" if i < len(parts) - 1 else b"\n")
        out.write(b"}\n")

    def to_json(self, omit: frozenset[str] = frozenset()) -> bytes:
        buf = io.BytesIO()
        self.write_json(buf, omit)
        return buf.getvalue()


_ENC = msgspec.json.Encoder(order="sorted")
OMITTABLE = ("bgp",)


def _fmt(value: Any, depth: int) -> bytes:
    """``value`` as msgspec formats it with indent 2, for a position ``depth`` levels deep."""
    text = msgspec.json.format(_ENC.encode(value), indent=2)
    return text.replace(b"\n", b"\n" + b"  " * depth) if depth else text


def _write_bgp(out: BinaryIO, bgp: dict[str, dict[str, list]]) -> None:
    """node -> peer -> [item]: lists shared by many nodes (same object) are formatted once, items too."""
    if not bgp:
        out.write(b"{}")
        return
    item_bytes: dict[int, bytes] = {}
    list_bytes: dict[int, bytes] = {}
    sep_item = b",\n" + b"  " * 4
    nodes = sorted(bgp)
    out.write(b"{\n")
    for ni, node in enumerate(nodes):
        peers = bgp[node]
        out.write(b"    " + _ENC.encode(node) + b": ")
        if not peers:
            out.write(b"{}")
        else:
            out.write(b"{\n")
            names = sorted(peers)
            for pi, peer in enumerate(names):
                lst = peers[peer]
                chunk = list_bytes.get(id(lst))
                if chunk is None:
                    try:  # items shared with lists already written: looked up without a Python-level loop
                        pieces = list(map(item_bytes.__getitem__, map(id, lst)))
                    except KeyError:
                        pieces = []
                        for item in lst:
                            b = item_bytes.get(id(item))
                            if b is None:
                                b = item_bytes[id(item)] = _fmt(item, 4)
                            pieces.append(b)
                    chunk = (b"[\n" + b"  " * 4 + sep_item.join(pieces) + b"\n" + b"  " * 3 + b"]") if pieces else b"[]"
                    list_bytes[id(lst)] = chunk
                out.write(b"      " + _ENC.encode(peer) + b": ")
                out.write(chunk)
                out.write(b",\n" if pi < len(names) - 1 else b"\n")
            out.write(b"    }")
        out.write(b",\n" if ni < len(nodes) - 1 else b"\n")
    out.write(b"  }")


def replay(
    files: list[str],
    at: int | None = None,
    metallb_namespaces: tuple[str, ...] = ("metallb-system",),
    lb_class: str | None = None,
) -> ReplayResult:
    """Fold ``files`` in order. Raises :class:`events.inputs.InputError` for an unreadable/undetectable file."""
    with gcpolicy.few_collections():
        return _replay(files, at, metallb_namespaces, lb_class)


def _replay(files: list[str], at: int | None, metallb_namespaces: tuple[str, ...], lb_class: str | None) -> ReplayResult:
    opts = inputs.Options(metallb_namespaces=metallb_namespaces)
    result = ReplayResult(state=statemod.new(lb_class))
    for rec in inputs.read_files(files, opts):
        if at is not None and result.records >= at:
            break
        result.records += 1
        for outcome in rec.outcomes:
            match outcome:
                case inputs.Accepted(event=event):
                    fold.apply(result.state, event)
                    result.events_applied += 1
                case inputs.Ignored(key=key):
                    result.ignored[key] += 1
                case inputs.Rejected(reason=reason):
                    result.rejected.append({"file": rec.file, "record": rec.number, "reason": reason})
                case inputs.Skipped():
                    pass
    return result
