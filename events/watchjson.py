"""Watch-event JSON lines straight into raw Structs: the hot path of ``events append`` and ``replay``.

``kubectl get -w -o json --output-watch-events`` prints one ``{"type": ..., "object": {...}}`` per line, and a
100,000-Service cluster is 200,000 of them. The reference reader (:mod:`events.inputs`) parses each line into
dicts with :mod:`json` and then converts the dicts into the raw Structs of :mod:`events.kube`. Here one msgspec
decoder goes from the text of a line to the raw Struct of its kind directly — a tagged union on ``kind`` — so no
intermediate dicts are built and unknown fields (``managedFields``, ``uid``, ...) are skipped by the parser.

Rules:

1. Only the common case is handled: an ``ADDED``/``MODIFIED``/``DELETED`` watch event of a core kind (Service,
   EndpointSlice, Node, Namespace) carrying that kind's ``apiVersion``. For anything else — another kind,
   ``BOOKMARK``, ``ERROR``, a line that does not decode or translate — :func:`translate_line` returns None and the
   caller takes the reference path, which gives the exact outcome and reason.
2. What it returns equals what the reference path returns for the same line, validation included
   (tests/unit/events/test_watchjson.py checks this over generated, golden and hypothesis-made lines), so its
   events need no second validation: they are canonical by construction.
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


class _WatchLine(msgspec.Struct):
    type: str
    object: _Service | _EndpointSlice | _Node | _Namespace


_decoder = msgspec.json.Decoder(_WatchLine)
# per raw type: its apiVersion, its translation, its kind (a delete's reference) and whether it is namespaced
_KINDS = {
    _Service: ("v1", kube.service_of, "Service", True),
    _EndpointSlice: ("discovery.k8s.io/v1", kube.endpoint_slice_of, "EndpointSlice", True),
    _Node: ("v1", kube.node_of, "Node", False),
    _Namespace: ("v1", kube.namespace_of, "Namespace", False),
}
_DecodeError = msgspec.DecodeError
_TranslateError = kube.TranslateError
_K8sUpsert = schema.K8sUpsert
_EndpointSliceT = _EndpointSlice


def translate_line(line: str | bytes) -> schema.K8sUpsert | schema.K8sDelete | kube.Ignored | None:
    """The event or the ignored key of one watch-event line; None: use the reference path.

    An event returned here is canonical (it passes :func:`events.codec.validate`): the translation of a core kind
    builds only canonical values, and a delete's reference is checked as :func:`events.kube.reference` does."""
    try:
        w = _decoder.decode(line)
    except _DecodeError:
        return None
    raw = w.object
    api_version, fn, kind, namespaced = _KINDS[type(raw)]
    if raw.api_version != api_version:
        return None
    typ = w.type
    if typ == "ADDED" or typ == "MODIFIED":
        try:
            obj = fn(raw)
        except _TranslateError:
            return None
        return obj if type(obj) is kube.Ignored else _K8sUpsert(obj=obj)
    if typ == "DELETED":
        meta = raw.metadata
        if not meta.name:
            return None  # the reference path words the refusal
        if type(raw) is _EndpointSliceT and raw.address_type != "IPv4" and raw.address_type != "IPv6":
            return kube.Ignored(f"{api_version}/{kind}")
        return schema.K8sDelete(ref=schema.ObjectRef(kind=kind, namespace=meta.namespace if namespaced else "",
                                                     name=meta.name))
    return None
