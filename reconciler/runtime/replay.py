"""Offline replay: input files -> fold -> the replay result of design.md §5 (no Redis, no network)."""

from __future__ import annotations

import bisect
import io
import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import msgspec

from events import inputs, kube, schema, watchjson
from reconciler import decisions, fold, planning, state as statemod
from reconciler.runtime import gcpolicy


@dataclass(slots=True)
class ReplayResult:
    state: statemod.State
    events_applied: int = 0
    records: int = 0
    ignored: Counter = field(default_factory=Counter)
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def to_json_obj(self, omit: frozenset[str] = frozenset()) -> dict[str, Any]:
        cfg = decisions.config(self.state)
        rows = planning.hash_rows(self.state)  # hashed, and printed as "services"
        out = {
            "events_applied": self.events_applied,
            "ignored": dict(sorted(self.ignored.items())),
            "state_hash": decisions.hash_of(cfg, rows),
            "config": cfg,
            "services": decisions.services_of(self.state, rows),
            "rejected": self.rejected,
        }
        if "bgp" not in omit:
            out["bgp"] = decisions.bgp(self.state)
        return out

    def write_json(self, out: BinaryIO, omit: frozenset[str] = frozenset()) -> None:
        """Write the JSON object of design.md §5 to ``out``: keys sorted, indented by 2, one trailing newline —
        the bytes ``msgspec.json.format(msgspec.json.encode(obj, order="sorted"), indent=2)`` would give, but the
        ``bgp`` map is written straight from its shared lists (each list and each item formatted once)."""
        with gcpolicy.no_collections():
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
                _write_bgp(out, planning.bgp_layout(self.state))
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


def _write_bgp(out: BinaryIO, layout: planning.BgpLayout) -> None:
    """node -> peer -> [item] from the map's shared parts: every run of items is formatted once, every kind of
    node's list for a peer joined once; a node's ``Local`` changes are spliced in as slices of that list."""
    if not layout.nodes:
        out.write(b"{}")
        return
    fmt = _ItemFormat()
    run_bytes: dict[int, tuple[bytes, list[int]]] = {}  # id(run) -> (its items joined, each item's length)
    lists: dict[tuple[int, str], tuple[bytes, bytes, list[int] | None]] = {}  # (kind, peer) -> (chunk, body, ...)

    def run_body(run: planning.BgpRun) -> tuple[bytes, list[int]]:
        got = run_bytes.get(id(run))
        if got is None:
            items = list(map(fmt.item, run.keys, run.vals))
            got = run_bytes[id(run)] = (_SEP_ITEM.join(items), list(map(len, items)))
        return got

    def shared(kind: int, peer: str) -> tuple[bytes, bytes, list[int] | None]:
        got = lists.get((kind, peer))
        if got is None:
            parts = [run_body(r) for r in layout.kinds[kind].get(peer, ())]
            body = _SEP_ITEM.join(p[0] for p in parts)
            chunk = _LIST_HEAD + body + _LIST_TAIL if body else b"[]"
            got = lists[(kind, peer)] = (chunk, body, None)
        return got

    def starts(kind: int, peer: str) -> list[int]:
        """Offsets in the body of each item of the (kind, peer) list, and one past the end (as if a separator
        followed the last item)."""
        chunk, body, offs = shared(kind, peer)
        if offs is None:
            step = len(_SEP_ITEM)
            lens = itertools.chain.from_iterable(run_body(r)[1] for r in layout.kinds[kind].get(peer, ()))
            offs = list(itertools.accumulate((n + step for n in lens), initial=0))
            lists[(kind, peer)] = (chunk, body, offs)
        return offs

    head = b"{\n"
    for node, kind, changes in layout.nodes:
        peers = layout.kinds[kind]
        mine: dict[str, list[tuple]] = {}  # peer -> its changed (prefix, value), sorted
        if changes:
            for k in sorted(changes):
                mine.setdefault(k[0], []).append((k[1], changes[k]))
        names = sorted(set(peers) | set(mine)) if mine else list(peers)
        if not names:
            continue
        out.write(head + b"    " + _ENC.encode(node) + b": {\n")
        head = b",\n"
        for pi, peer in enumerate(names):
            out.write(b"      " + _ENC.encode(peer) + b": ")
            if peer in mine:
                _write_spliced(out, layout, kind, peer, mine[peer], shared(kind, peer)[1], starts(kind, peer), fmt)
            else:
                out.write(shared(kind, peer)[0])
            out.write(b",\n" if pi < len(names) - 1 else b"\n")
        out.write(b"    }")
    if head == b"{\n":  # every node had empty lists
        out.write(b"{}")
        return
    out.write(b"\n  }")


def _write_spliced(out: BinaryIO, layout: planning.BgpLayout, kind: int, peer: str, changed: list[tuple],
                   body: bytes, offs: list[int], fmt: "_ItemFormat") -> None:
    """The (kind, peer) list with ``changed`` (sorted (prefix, value)) replacing or inserted among its items."""
    keys, _ = layout.flat(kind, peer)
    view = memoryview(body)
    step = len(_SEP_ITEM)
    pieces: list = []
    pos = 0  # next original item not yet written
    for pfx, val in changed:
        i = bisect.bisect_left(keys, pfx, pos)
        if i > pos:
            pieces.append(view[offs[pos]:offs[i] - step])
        pieces.append(fmt.item(pfx, val))
        pos = i + 1 if i < len(keys) and keys[i] == pfx else i
    if pos < len(keys):
        pieces.append(view[offs[pos]:offs[len(keys)] - step])
    out.write(_LIST_HEAD)
    for j, piece in enumerate(pieces):
        if j:
            out.write(_SEP_ITEM)
        out.write(piece)
    out.write(_LIST_TAIL)


_SEP_ITEM = b",\n" + b"  " * 4
_LIST_HEAD = b"[\n" + b"  " * 4
_LIST_TAIL = b"\n" + b"  " * 3 + b"]"


class _ItemFormat:
    """One ``bgp`` item ({"communities", "local_pref", "prefix"}) as msgspec formats it 4 levels deep, from a
    template per (LOCAL_PREF, communities) and the prefix text."""

    def __init__(self) -> None:
        self._templates: dict[tuple[int, frozenset[str]], tuple[bytes, bytes]] = {}

    def item(self, pfx: tuple[int, int, int], val: tuple[str, int, frozenset[str]]) -> bytes:
        _, lp, cs = val
        t = self._templates.get((lp, cs))
        if t is None:
            t = self._templates[(lp, cs)] = self._template(lp, cs)
        return t[0] + planning.prefix_text(pfx).encode() + t[1]

    @staticmethod
    def _template(lp: int, cs: frozenset[str]) -> tuple[bytes, bytes]:
        item = _fmt(planning.bgp_item(("", (4, 0, 32)), ("", lp, cs)) | {"prefix": "\x00"}, 4)
        before, after = item.split(b'"\\u0000"')  # msgspec escapes the NUL: a marker no other part contains
        return before + b'"', b'"' + after


def replay(
    files: list[str],
    at: int | None = None,
    metallb_namespaces: tuple[str, ...] = ("metallb-system",),
    lb_class: str | None = None,
) -> ReplayResult:
    """Fold ``files`` in order. Raises :class:`events.inputs.InputError` for an unreadable/undetectable file."""
    with gcpolicy.no_collections():
        return _replay(files, at, metallb_namespaces, lb_class)


def _replay(files: list[str], at: int | None, metallb_namespaces: tuple[str, ...], lb_class: str | None) -> ReplayResult:
    opts = inputs.Options(metallb_namespaces=metallb_namespaces)
    result = ReplayResult(state=statemod.new(lb_class))
    state, ignored, rejected = result.state, result.ignored, result.rejected
    records = applied = 0
    # every file is opened and its format detected before anything is folded (an unreadable one fails the call)
    opened = [(str(p), inputs.open_input(p, opts)) for p in files]
    for name, got in opened:
        if at is not None and records >= at:
            break
        if type(got) is list:
            records, applied = _fold_lines(state, name, got, opts, at, records, applied, ignored, rejected)
        else:
            records, applied = _fold_records(state, got, at, records, applied, ignored, rejected)
    result.records, result.events_applied = records, applied
    return result


def _fold_lines(state: statemod.State, name: str, lines: list[str], opts: inputs.Options, at: int | None,
                records: int, applied: int, ignored: Counter, rejected: list) -> tuple[int, int]:
    """The records of a JSON-lines file, folded as :func:`_fold_records` would fold them (one record per non-blank
    line): the common watch event goes from its line to the fold without a Record or an outcome being built."""
    apply, upsert, delete = fold.apply, fold.upsert, fold.delete
    translate = watchjson.translate_line
    upsert_t, delete_t, ignored_t = schema.K8sUpsert, schema.K8sDelete, kube.Ignored
    limit = at if at is not None else -1  # (a negative --at stops _replay before this)
    number = 0
    for line in lines:
        if not line or line.isspace():
            continue
        if records == limit:
            break
        records += 1
        number += 1
        ev = translate(line)
        if ev is not None:
            t = type(ev)
            if t is upsert_t and state.plan is None:  # fold.apply without planning, inlined
                upsert(state, ev.obj)
                applied += 1
            elif t is delete_t and state.plan is None:
                delete(state, ev.ref)
                applied += 1
            elif t is ignored_t:
                ignored[ev.key] += 1
            else:
                apply(state, ev)
                applied += 1
            continue
        for outcome in inputs.line_outcomes(line, opts):
            kind = type(outcome)
            if kind is inputs.Accepted:
                apply(state, outcome.event)
                applied += 1
            elif kind is inputs.Ignored:
                ignored[outcome.key] += 1
            elif kind is inputs.Rejected:
                rejected.append({"file": name, "record": number, "reason": outcome.reason})
            elif kind is not inputs.Skipped:
                raise TypeError(f"unknown input outcome {outcome!r}")
    return records, applied


def _fold_records(state: statemod.State, recs, at: int | None, records: int, applied: int, ignored: Counter,
                  rejected: list) -> tuple[int, int]:
    apply = fold.apply
    accepted_t, ignored_t, rejected_t = inputs.Accepted, inputs.Ignored, inputs.Rejected
    for rec in recs:
        if at is not None and records >= at:
            break
        records += 1
        for outcome in rec.outcomes:  # by exact type: the outcome classes are final (msgspec Structs)
            kind = type(outcome)
            if kind is accepted_t:
                apply(state, outcome.event)
                applied += 1
            elif kind is ignored_t:
                ignored[outcome.key] += 1
            elif kind is rejected_t:
                rejected.append({"file": rec.file, "record": rec.number, "reason": outcome.reason})
            elif not isinstance(outcome, inputs.Skipped):
                raise TypeError(f"unknown input outcome {outcome!r}")
    return records, applied
