"""One codec for events: msgpack on the stream and in log files, JSON for people.

The encoder and decoders are built once per process and reused (msgspec's advice). Decoding is strict: a value of
the wrong type, an unknown tag or an unknown field raises :class:`DecodeError` with msgspec's path-precise
message. :func:`validate` then checks what the type system cannot: canonical address text and sorted pairs, so
that every replica folds identical values (design.md §3).
"""

from __future__ import annotations

import ipaddress
import re

import msgspec

from events import schema

FORMAT_VERSION = 1

_msgpack_encoder = msgspec.msgpack.Encoder()
_msgpack_decoder = msgspec.msgpack.Decoder(schema.Event)
_json_encoder = msgspec.json.Encoder()
_json_decoder = msgspec.json.Decoder(schema.Event)


class DecodeError(ValueError):
    """An event could not be decoded or is not canonical; the message is the reason."""


encode = _msgpack_encoder.encode  # encode(event) -> bytes (the encoder's own method: no Python frame per event)


def encode_into(event: schema.Event, buf: bytearray, offset: int = 0) -> None:
    _msgpack_encoder.encode_into(event, buf, offset)


def decode(data: bytes | bytearray | memoryview) -> schema.Event:
    """Decode one msgpack event and validate it. Raises :class:`DecodeError`."""
    try:
        event = _msgpack_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise DecodeError(f"invalid event: {exc}") from None
    validate(event)
    return event


def encode_json(event: schema.Event) -> bytes:
    return _json_encoder.encode(event)


def decode_json(data: bytes | str) -> schema.Event:
    """Decode one JSON event (the native JSON-lines form) and validate it. Raises :class:`DecodeError`."""
    try:
        event = _json_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise DecodeError(f"invalid event: {exc}") from None
    validate(event)
    return event


def from_builtins(obj: object) -> schema.Event:
    """Convert an already-parsed JSON value (dict) into an event. Raises :class:`DecodeError`."""
    try:
        event = msgspec.convert(obj, schema.Event)
    except msgspec.ValidationError as exc:
        raise DecodeError(f"invalid event: {exc}") from None
    validate(event)
    return event


def to_builtins(event: schema.Event) -> dict:
    return msgspec.to_builtins(event)


# --------------------------------------------------------------------------------------------------------------
# Canonical-form checks


def canonical_ip(text: str) -> str:
    """The canonical text of an IP address (dotted quad / RFC 5952). Raises ValueError if not an address.

    Scoped IPv6 addresses (``fe80::1%eth0``) are not addresses here: no Kubernetes address field carries a zone.
    A dotted quad already in canonical form (ASCII decimal octets ≤ 255 without leading zeros: exactly what
    ``ipaddress`` accepts and prints back unchanged) is recognised without parsing it (the replay hot path: every
    endpoint address of every EndpointSlice); IPv6 texts are remembered (a pure function's memo, bounded).
    """
    if _CANONICAL_V4(text) is not None:
        return text
    got = _CANONICAL.get(text)
    if got is not None:
        return got
    if "%" in text:
        raise ValueError(f"{text!r} has a zone index")
    got = str(_ip_address(text))
    if len(_CANONICAL) >= 65_536:
        _CANONICAL.clear()
    _CANONICAL[text] = got
    return got



def _ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """``ipaddress.ip_address(text)``, without its failed IPv4 attempt (an exception) for a text with a colon, which
    can only be IPv6. A text that fails goes through ``ip_address`` itself, for the same error."""
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            pass
    return ipaddress.ip_address(text)


_CANONICAL: dict[str, str] = {}
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_V4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}").fullmatch
CANONICAL_V4 = _CANONICAL_V4  # a match (not None) for a dotted quad already in canonical form


def _check_ip(text: str, where: str) -> None:
    try:
        ok = canonical_ip(text) == text
    except ValueError:
        raise DecodeError(f"{where}: {text!r} is not an IP address") from None
    if not ok:
        raise DecodeError(f"{where}: {text!r} is not in canonical form ({canonical_ip(text)!r})")


def _ip_ok(text: str) -> bool:
    try:
        return canonical_ip(text) == text
    except ValueError:
        return False


def _pairs_ok(pairs: schema.Pairs) -> bool:
    if len(pairs) < 2:
        return True
    keys = [k for k, _ in pairs]
    return keys == sorted(set(keys))


def _where(obj: schema.K8sObject) -> str:
    return f"{type(obj).__name__} {obj.namespace + '/' if obj.namespace else ''}{obj.name}"


_OBJECT_KINDS = frozenset(schema.OBJECT_KINDS)
_CLUSTER_SCOPED = frozenset({"Node", "Namespace"})
# RFC 1123 subdomain, as Kubernetes requires of node names
_NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
METALLB_KINDS = frozenset({"IPAddressPool", "L2Advertisement", "BGPAdvertisement", "BGPPeer", "Community",
                           "BFDProfile"})
_METALLB_TYPES = (schema.IPAddressPool, schema.L2Advertisement, schema.BGPAdvertisement, schema.BGPPeer,
                  schema.Community, schema.BFDProfile)


def outside_namespaces(event: schema.Event, metallb_namespaces: tuple[str, ...]) -> str | None:
    """A MetalLB object (upsert or delete) outside the MetalLB namespaces streamlb honours: the key it is ignored
    and counted under (``metallb.io/KIND[namespace NS]``, as the Kubernetes translation counts it); else None.
    MetalLB honours its own namespace only; so does every replica (design.md §3)."""
    match event:
        case schema.K8sUpsert(obj=obj):
            if not isinstance(obj, _METALLB_TYPES):
                return None
            kind, ns = type(obj).__struct_config__.tag, obj.namespace
        case schema.K8sDelete(ref=ref):
            kind, ns = ref.kind, ref.namespace
        case _:
            return None
    if kind in METALLB_KINDS and ns not in metallb_namespaces:
        return f"metallb.io/{kind}[namespace {ns}]"
    return None


def _ok_ip(text: str) -> bool:
    if _CANONICAL_V4(text) is not None:
        return True
    try:
        return canonical_ip(text) == text
    except ValueError:
        return False


def _ok_pairs(pairs: schema.Pairs) -> bool:
    prev = None
    for k, _ in pairs:
        if prev is not None and not prev < k:
            return False
        prev = k
    return True


def _looks_canonical(event: schema.Event) -> bool:
    """The checks of :func:`validate` without building any message (the hot path: most events are canonical)."""
    t = type(event)
    if t is schema.K8sUpsert:
        obj = event.obj  # type: ignore[union-attr]
        if not obj.name or not _ok_pairs(obj.labels):
            return False
        ot = type(obj)
        if ot is schema.EndpointSlice:
            return all(_ok_ip(ip) for ep in obj.endpoints for ip in ep.addresses)
        if ot is schema.Service:
            return (_ok_pairs(obj.annotations) and _ok_pairs(obj.selector)
                    and all(ip == "None" or _ok_ip(ip) for ip in obj.cluster_ips)
                    and all(_ok_ip(ip) for ip in obj.ingress_ips) and all(0 <= p.port <= 65535 for p in obj.ports))
        if ot is schema.Node:
            return not obj.namespace and all(_ok_ip(ip) for ip in obj.internal_ips)
        return False  # other kinds are rare: the full check below (whatever it checks for them)
    if t is schema.K8sDelete:
        ref = event.ref  # type: ignore[union-attr]
        return bool(ref.name) and ref.kind in _OBJECT_KINDS and not (ref.namespace and ref.kind in _CLUSTER_SCOPED)
    if t is schema.SpeakerUp or t is schema.SpeakerDown:
        node = event.node  # type: ignore[union-attr]
        return bool(node) and len(node) <= 253 and _NODE_NAME.match(node) is not None  # type: ignore[arg-type]
    return False


def validate(event: schema.Event) -> None:
    """Refuse an event that is well-typed but not canonical. Raises :class:`DecodeError`.

    The checks run first without building any message (this is on every producer's and replica's path); the
    message naming the object and field is built only for an event that fails."""
    if _looks_canonical(event):
        return
    match event:
        case schema.K8sUpsert(obj=obj):
            if not obj.name:
                raise DecodeError(f"{type(obj).__name__}: empty name")
            if not _pairs_ok(obj.labels):
                raise DecodeError(f"{_where(obj)}: labels: keys must be unique and sorted")
            match obj:
                case schema.Service():
                    for field, pairs in (("annotations", obj.annotations), ("selector", obj.selector)):
                        if not _pairs_ok(pairs):
                            raise DecodeError(f"{_where(obj)}: {field}: keys must be unique and sorted")
                    for i, ip in enumerate(obj.cluster_ips):
                        if ip != "None" and not _ip_ok(ip):
                            _check_ip(ip, f"{_where(obj)}: clusterIPs[{i}]")
                    for i, ip in enumerate(obj.ingress_ips):
                        if not _ip_ok(ip):
                            _check_ip(ip, f"{_where(obj)}: status.loadBalancer.ingress[{i}].ip")
                    for p in obj.ports:
                        if not 0 <= p.port <= 65535:
                            raise DecodeError(f"{_where(obj)}: port {p.port} out of range")
                case schema.EndpointSlice():
                    for i, ep in enumerate(obj.endpoints):
                        for j, ip in enumerate(ep.addresses):
                            if not _ip_ok(ip):
                                _check_ip(ip, f"{_where(obj)}: endpoints[{i}].addresses[{j}]")
                case schema.Node():
                    if obj.namespace:
                        raise DecodeError(f"{_where(obj)}: a Node is cluster-scoped and has no namespace")
                    for i, ip in enumerate(obj.internal_ips):
                        if not _ip_ok(ip):
                            _check_ip(ip, f"{_where(obj)}: internalIPs[{i}]")
                case schema.Namespace():
                    if obj.namespace:
                        raise DecodeError(f"{_where(obj)}: a Namespace is cluster-scoped and has no namespace")
                case _:
                    pass
        case schema.K8sDelete(ref=ref):
            if not ref.name:
                raise DecodeError(f"{ref.kind}: empty name")
            if ref.kind not in _OBJECT_KINDS:
                raise DecodeError(f"k8s.delete of unknown kind {ref.kind!r} (kinds: {', '.join(schema.OBJECT_KINDS)})")
            if ref.namespace and ref.kind in _CLUSTER_SCOPED:
                raise DecodeError(f"k8s.delete of {ref.kind} {ref.namespace}/{ref.name}: a {ref.kind} is "
                                  "cluster-scoped and has no namespace")
        case schema.SpeakerUp(node=node) | schema.SpeakerDown(node=node):
            if not node:
                raise DecodeError(f"{event.__struct_config__.tag}: empty node name")
            if len(node) > 253 or not _NODE_NAME.match(node):
                raise DecodeError(f"{event.__struct_config__.tag}: {node[:80]!r} is not a Kubernetes node name "
                                  "(lowercase RFC 1123 subdomain, at most 253 characters)")
