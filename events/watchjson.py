"""Watch-event JSON lines straight into raw Structs: the hot path of ``events append`` and ``replay``.

``kubectl get -w -o json --output-watch-events`` prints one ``{"type": ..., "object": {...}}`` per line, and a
100,000-Service cluster is 200,000 of them. The reference reader (:mod:`events.inputs`) parses each line into
dicts with :mod:`json` and then converts the dicts into the raw Structs of :mod:`events.kube`. Here one msgspec
decoder goes from the text of a line to the raw Struct of its kind directly — a tagged union on ``kind`` — so no
intermediate dicts are built and unknown fields (``managedFields``, ``uid``, ...) are skipped by the parser.

Rules:

1. Only the common case is handled: an ``ADDED``/``MODIFIED`` watch event of a core kind (Service, EndpointSlice,
   Node, Namespace) carrying that kind's ``apiVersion``. For anything else — another kind, ``DELETED``,
   ``BOOKMARK``, ``ERROR``, a line that does not decode or translate — :func:`translate_line` returns None and the
   caller takes the reference path, which gives the exact outcome and reason.
2. What it returns equals what the reference path returns for the same line (tests/unit/test_watchjson.py checks
   this over generated, golden and hypothesis-made lines).
"""

from __future__ import annotations

import msgspec

from events import kube, schema


class _Service(kube.RawService, tag="Service", tag_field="kind"):
    api_version: str = ""


class _EndpointSlice(kube.RawEndpointSlice, tag="EndpointSlice", tag_field="kind"):
    api_version: str = ""


class _Node(kube.RawNode, tag="Node", tag_field="kind"):
    api_version: str = ""


class _Namespace(kube.RawNamespace, tag="Namespace", tag_field="kind"):
    api_version: str = ""


_API_VERSION = {_Service: "v1", _Node: "v1", _Namespace: "v1", _EndpointSlice: "discovery.k8s.io/v1"}
_KIND = {_Service: "Service", _Node: "Node", _Namespace: "Namespace", _EndpointSlice: "EndpointSlice"}


class _WatchLine(msgspec.Struct):
    type: str
    object: _Service | _EndpointSlice | _Node | _Namespace


_decoder = msgspec.json.Decoder(_WatchLine)
_UPSERT_TYPES = frozenset({"ADDED", "MODIFIED"})


def translate_line(line: str | bytes) -> schema.K8sUpsert | kube.Ignored | None:
    """The event (not yet validated) or the ignored key of one watch-event line; None: use the reference path."""
    try:
        w = _decoder.decode(line)
    except msgspec.DecodeError:
        return None
    if w.type not in _UPSERT_TYPES:
        return None
    raw = w.object
    typ = type(raw)
    if raw.api_version != _API_VERSION[typ]:
        return None
    try:
        obj = kube.translate_core(raw.api_version, _KIND[typ], raw)
    except kube.TranslateError:
        return None
    if obj is None:
        return None
    if isinstance(obj, kube.Ignored):
        return obj
    return schema.K8sUpsert(obj=obj)
