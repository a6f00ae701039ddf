"""BGP-4 messages, pure-Python reference: the readable spec that ``_bgp.pyx`` must match byte for byte.

Encoders (RFC 4271 §4 and the RFCs cited at each function) and the UPDATE packer, which puts as many prefixes as
fit the negotiated maximum (4,096 bytes, or 65,535 with RFC 8654) into each UPDATE, encoding the shared path
attributes once per batch. Split rule (shared with the compiled twin): fill each message greedily in input order;
for MP_REACH/MP_UNREACH the room is computed as if the attribute used the 4-byte extended-length header, so split
points never depend on the header size the final message ends up with.

Builder inputs follow ``fastpath.model``: addresses are ints, prefixes ``(network, length)`` tuples or a bare int
for a host route (/32, /128). Bad arguments raise ``ValueError``. Decoding lives in ``fastpath._bgp_decode``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from fastpath.constants import (
    AS_TRANS,
    BGP_HEADER_LEN,
    BGP_MAX_EXTENDED,
    BGP_MAX_MESSAGE,
    Afi,
    AttrType,
    MsgType,
    Safi,
)
from fastpath.model import (
    Attrs,
    AsSegment,
    Cap,
    Keepalive,
    Message,
    MpReach,
    Notification,
    Open,
    RouteRefresh,
    Update,
    metallb_capabilities,
)

_MARKER = b"\xff" * 16
_BITS = {Afi.IPV4: 32, Afi.IPV6: 128}

# Attribute flags per type (RFC 4271 §5, RFC 4760, RFC 6793, RFC 8092): optional/transitive bits.
_WELL_KNOWN = 0x40
_OPT_TRANS = 0xC0
_OPT_NONTRANS = 0x80


def _header(length: int, kind: int) -> bytes:
    # RFC 4271 §4.1: marker (16 bytes of ones), length (2, whole message), type (1).
    return _MARKER + struct.pack("!HB", length, kind)


def _check_max_len(max_len: int) -> int:
    if not isinstance(max_len, int) or not BGP_MAX_MESSAGE <= max_len <= BGP_MAX_EXTENDED:
        raise ValueError(f"max_len must be in 4096..65535, got {max_len!r}")
    return max_len


def _u(value: object, bits: int, name: str) -> int:
    if not isinstance(value, int) or not 0 <= value < (1 << bits):
        raise ValueError(f"{name} must be an int in 0..{(1 << bits) - 1}, got {value!r}")
    return value


def build_keepalive() -> bytes:
    """KEEPALIVE: the 19-byte header alone (RFC 4271 §4.4)."""
    return _header(BGP_HEADER_LEN, MsgType.KEEPALIVE)


def build_notification(code: int, subcode: int, data: bytes = b"") -> bytes:
    """NOTIFICATION (RFC 4271 §4.5): error code, subcode, data."""
    data = bytes(data)
    length = BGP_HEADER_LEN + 2 + len(data)
    if length > BGP_MAX_MESSAGE:
        raise ValueError(f"NOTIFICATION data of {len(data)} bytes exceeds 4096-byte message")
    return _header(length, MsgType.NOTIFICATION) + bytes([_u(code, 8, "code"), _u(subcode, 8, "subcode")]) + data


def build_route_refresh(afi: int, safi: int, subtype: int = 0) -> bytes:
    """ROUTE-REFRESH (RFC 2918 §3; ``subtype`` per RFC 7313 §3, 0 = normal request)."""
    return _header(23, MsgType.ROUTE_REFRESH) + struct.pack(
        "!HBB", _u(afi, 16, "afi"), _u(subtype, 8, "subtype"), _u(safi, 8, "safi"))


def build_open(asn: int, hold_time: int, router_id: int, capabilities: Sequence[Cap] | None = None) -> bytes:
    """OPEN (RFC 4271 §4.2) with all capabilities in one Capabilities optional parameter (RFC 5492), as MetalLB.

    ``capabilities`` defaults to MetalLB's set (:func:`fastpath.model.metallb_capabilities`). My-AS is ``asn``,
    or AS_TRANS when it needs 4 octets (RFC 6793 §4.1); put the 4-octet AS capability in ``capabilities`` then.
    """
    _u(asn, 32, "asn")
    _u(hold_time, 16, "hold_time")
    _u(router_id, 32, "router_id")
    if hold_time in (1, 2):
        raise ValueError("hold time must be 0 or at least 3 seconds (RFC 4271 §4.2)")
    caps = metallb_capabilities(asn) if capabilities is None else tuple(capabilities)
    body = b""
    for cap in caps:
        value = bytes(cap.value)
        if len(value) > 255:
            raise ValueError(f"capability {cap.code} value longer than 255 bytes")
        body += bytes([_u(cap.code, 8, "capability code"), len(value)]) + value
    params = b""
    if caps:
        if len(body) > 253:
            raise ValueError("capabilities exceed one optional parameter (253 bytes)")
        params = bytes([2, len(body)]) + body
    my_as = asn if asn <= 0xFFFF else AS_TRANS
    fixed = struct.pack("!BHHIB", 4, my_as, hold_time, router_id, len(params))
    return _header(BGP_HEADER_LEN + len(fixed) + len(params), MsgType.OPEN) + fixed + params


# --- path attributes ------------------------------------------------------------------------------------------------


def _attr(flags: int, kind: int, value: bytes) -> bytes:
    # RFC 4271 §4.3: flags, type, then a 1-byte length — or 2 bytes with the Extended Length bit when > 255.
    if len(value) > 0xFFFF:
        raise ValueError(f"attribute {kind} value of {len(value)} bytes exceeds 65535")
    if len(value) > 255:
        return struct.pack("!BBH", flags | 0x10, kind, len(value)) + value
    return struct.pack("!BBB", flags & ~0x10, kind, len(value)) + value


def _segments(segs: Iterable[AsSegment], width: int, name: str) -> bytes:
    out = b""
    for seg in segs:
        _u(seg.kind, 8, "segment type")
        if not 1 <= len(seg.asns) <= 255:
            raise ValueError(f"{name} segment must hold 1..255 ASNs, got {len(seg.asns)}")
        out += bytes([seg.kind, len(seg.asns)])
        for asn in seg.asns:
            if width == 2 and not (isinstance(asn, int) and 0 <= asn <= 0xFFFF):
                raise ValueError(f"ASN {asn!r} needs 4 octets: a 2-octet peer gets AS_TRANS (use make_attrs)")
            out += _u(asn, 32, "ASN").to_bytes(width, "big")
    return out


def _attr_list(attrs: Attrs, as4: bool) -> list[tuple[int, bytes]]:
    """The encoded attributes of ``attrs`` as (type, bytes), in type-code order; MP attributes are not here."""
    if not isinstance(attrs, Attrs):
        raise ValueError(f"attrs must be a fastpath.model.Attrs, got {type(attrs).__name__}")
    out: list[tuple[int, bytes]] = []
    if attrs.origin is not None:
        out.append((AttrType.ORIGIN, _attr(_WELL_KNOWN, AttrType.ORIGIN, bytes([_u(attrs.origin, 8, "origin")]))))
    if attrs.as_path is not None:
        out.append((AttrType.AS_PATH, _attr(_WELL_KNOWN, AttrType.AS_PATH,
                                            _segments(attrs.as_path, 4 if as4 else 2, "AS_PATH"))))
    if attrs.next_hop is not None:
        out.append((AttrType.NEXT_HOP, _attr(_WELL_KNOWN, AttrType.NEXT_HOP,
                                             _u(attrs.next_hop, 32, "next_hop").to_bytes(4, "big"))))
    if attrs.med is not None:
        out.append((AttrType.MULTI_EXIT_DISC, _attr(_OPT_NONTRANS, AttrType.MULTI_EXIT_DISC,
                                                    _u(attrs.med, 32, "med").to_bytes(4, "big"))))
    if attrs.local_pref is not None:
        out.append((AttrType.LOCAL_PREF, _attr(_WELL_KNOWN, AttrType.LOCAL_PREF,
                                               _u(attrs.local_pref, 32, "local_pref").to_bytes(4, "big"))))
    if attrs.atomic_aggregate:
        out.append((AttrType.ATOMIC_AGGREGATE, _attr(_WELL_KNOWN, AttrType.ATOMIC_AGGREGATE, b"")))
    if attrs.communities:
        value = b"".join(_u(c, 32, "community").to_bytes(4, "big") for c in attrs.communities)
        out.append((AttrType.COMMUNITIES, _attr(_OPT_TRANS, AttrType.COMMUNITIES, value)))
    if attrs.as4_path:
        out.append((AttrType.AS4_PATH, _attr(_OPT_TRANS, AttrType.AS4_PATH, _segments(attrs.as4_path, 4, "AS4_PATH"))))
    if attrs.large_communities:
        value = b""
        for lc in attrs.large_communities:
            if len(lc) != 3:
                raise ValueError(f"large community must be 3 ints, got {lc!r}")
            value += b"".join(_u(x, 32, "large community part").to_bytes(4, "big") for x in lc)
        out.append((AttrType.LARGE_COMMUNITIES, _attr(_OPT_TRANS, AttrType.LARGE_COMMUNITIES, value)))
    known = {k for k, _ in out}
    for flags, kind, value in attrs.other:
        _u(flags, 8, "flags")
        if _u(kind, 8, "type") in known or kind in (AttrType.MP_REACH_NLRI, AttrType.MP_UNREACH_NLRI):
            raise ValueError(f"attribute type {kind} given twice")
        known.add(kind)
        out.append((kind, _attr(flags, kind, bytes(value))))
    out.sort(key=lambda t: t[0])
    return out


def encode_attrs(attrs: Attrs, as4: bool = True) -> bytes:
    """The path-attribute block for ``attrs`` (RFC 4271 §4.3), in type-code order, without MP_REACH/MP_UNREACH.

    ``as4``: whether the session negotiated 4-octet ASNs (RFC 6793); AS_PATH is written 4 or 2 octets per ASN.
    """
    return b"".join(v for _, v in _attr_list(attrs, as4))


# --- prefixes -------------------------------------------------------------------------------------------------------


def _prefix(item: object, bits: int) -> tuple[int, int]:
    if isinstance(item, int):
        addr, plen = item, bits
    else:
        try:
            addr, plen = item  # type: ignore[misc]
        except (TypeError, ValueError):
            raise ValueError(f"prefix must be (network, length) or an int, got {item!r}") from None
    if not isinstance(plen, int) or not 0 <= plen <= bits:
        raise ValueError(f"prefix length must be in 0..{bits}, got {plen!r}")
    if not isinstance(addr, int) or not 0 <= addr < (1 << bits):
        raise ValueError(f"prefix address must be an int in 0..2**{bits}-1, got {addr!r}")
    if addr & ((1 << (bits - plen)) - 1):
        raise ValueError(f"prefix {addr:#x}/{plen} has bits set past its length")
    return addr, plen


def _prefix_bytes(addr: int, plen: int, bits: int) -> bytes:
    # RFC 4271 §4.3 / RFC 4760 §5: length in bits, then the fewest bytes that hold it.
    n = (plen + 7) // 8
    return bytes([plen]) + (addr >> (bits - 8 * n)).to_bytes(n, "big")


def _chunks(encoded: list[bytes], room: int) -> list[bytes]:
    """Greedy split of encoded prefixes into runs of at most ``room`` bytes, in order."""
    out, cur, used = [], [], 0
    for p in encoded:
        if used + len(p) > room and cur:
            out.append(b"".join(cur))
            cur, used = [], 0
        cur.append(p)
        used += len(p)
    if cur:
        out.append(b"".join(cur))
    return out


def _family(afi: int) -> int:
    if afi not in _BITS:
        raise ValueError(f"afi must be 1 (IPv4) or 2 (IPv6), got {afi!r}")
    return _BITS[afi]


def _mp_next_hop(next_hop: object, afi: int) -> bytes:
    bits = _family(afi)
    hops = (next_hop,) if isinstance(next_hop, int) else tuple(next_hop or ())  # type: ignore[arg-type]
    if not 1 <= len(hops) <= (2 if afi == Afi.IPV6 else 1):
        raise ValueError(f"next_hop for afi {afi} must be one address{' or (global, link-local)' if afi == 2 else ''}")
    return b"".join(_u(h, bits, "next_hop").to_bytes(bits // 8, "big") for h in hops)


def _update(withdrawn: bytes, attr_block: bytes, nlri: bytes) -> bytes:
    length = BGP_HEADER_LEN + 4 + len(withdrawn) + len(attr_block) + len(nlri)
    return (_header(length, MsgType.UPDATE) + len(withdrawn).to_bytes(2, "big") + withdrawn
            + len(attr_block).to_bytes(2, "big") + attr_block + nlri)


def pack_updates(prefixes: Sequence[object], attrs: Attrs, *, afi: int = 1, next_hop: object = None,
                 as4: bool = True, max_len: int = 4096) -> list[bytes]:
    """UPDATEs announcing ``prefixes`` (in input order) with the shared ``attrs``, each at most ``max_len`` bytes.

    IPv4 (``afi=1``): NLRI field, NEXT_HOP from ``attrs.next_hop`` (required). IPv6 (``afi=2``): MP_REACH_NLRI
    (RFC 4760 §3) with ``next_hop`` = global address or (global, link-local) (RFC 2545 §3), placed in type-code
    order among the attributes. ORIGIN and AS_PATH are required (RFC 4271 §5.1). No prefixes → no messages.
    """
    _check_max_len(max_len)
    bits = _family(afi)
    encoded = [_prefix_bytes(*_prefix(p, bits), bits) for p in prefixes]
    if attrs is None or getattr(attrs, "origin", None) is None or getattr(attrs, "as_path", None) is None:
        raise ValueError("an announcement needs ORIGIN and AS_PATH (RFC 4271 §5.1.1, §5.1.2)")
    items = _attr_list(attrs, as4)
    if afi == Afi.IPV4:
        if attrs.next_hop is None:
            raise ValueError("IPv4 NLRI needs attrs.next_hop (RFC 4271 §5.1.3)")
        block = b"".join(v for _, v in items)
        room = max_len - BGP_HEADER_LEN - 4 - len(block)
        if room < 5:
            raise ValueError("attributes leave no room for a prefix")
        return [_update(b"", block, chunk) for chunk in _chunks(encoded, room)] if encoded else []
    nh = _mp_next_hop(next_hop, afi)
    low = b"".join(v for k, v in items if k < AttrType.MP_REACH_NLRI)
    high = b"".join(v for k, v in items if k > AttrType.MP_REACH_NLRI)
    mp_fixed = struct.pack("!HBB", afi, Safi.UNICAST, len(nh)) + nh + b"\x00"
    room = max_len - BGP_HEADER_LEN - 4 - len(low) - len(high) - 4 - len(mp_fixed)
    if room < 17:
        raise ValueError("attributes leave no room for a prefix")
    out = []
    for chunk in (_chunks(encoded, room) if encoded else []):
        mp = _attr(_OPT_NONTRANS, AttrType.MP_REACH_NLRI, mp_fixed + chunk)
        out.append(_update(b"", low + mp + high, b""))
    return out


def pack_withdrawals(prefixes: Sequence[object], *, afi: int = 1, max_len: int = 4096) -> list[bytes]:
    """UPDATEs withdrawing ``prefixes`` (in input order), packed like :func:`pack_updates`: IPv4 in the Withdrawn
    Routes field (RFC 4271 §4.3), IPv6 in MP_UNREACH_NLRI (RFC 4760 §4). No prefixes → no messages."""
    _check_max_len(max_len)
    bits = _family(afi)
    encoded = [_prefix_bytes(*_prefix(p, bits), bits) for p in prefixes]
    if not encoded:
        return []
    if afi == Afi.IPV4:
        return [_update(chunk, b"", b"") for chunk in _chunks(encoded, max_len - BGP_HEADER_LEN - 4)]
    room = max_len - BGP_HEADER_LEN - 4 - 4 - 3
    head = struct.pack("!HB", afi, Safi.UNICAST)
    return [_update(b"", _attr(_OPT_NONTRANS, AttrType.MP_UNREACH_NLRI, head + chunk), b"")
            for chunk in _chunks(encoded, room)]


def build_end_of_rib(afi: int = 1, safi: int = 1) -> bytes:
    """End-of-RIB marker (RFC 4724 §2): an empty UPDATE for IPv4 unicast, else an UPDATE whose only attribute is
    an empty MP_UNREACH_NLRI for (afi, safi)."""
    if afi == Afi.IPV4 and safi == Safi.UNICAST:
        return _update(b"", b"", b"")
    return _update(b"", _attr(_OPT_NONTRANS, AttrType.MP_UNREACH_NLRI,
                              struct.pack("!HB", _u(afi, 16, "afi"), _u(safi, 8, "safi"))), b"")


# --- the general encoder (any message value; not the hot path) -------------------------------------------------------


def encode(msg: Message, *, as4: bool = True, max_len: int = 4096) -> bytes:
    """Encode any message value of ``fastpath.model``; ``decode(encode(m)) == m`` for every valid ``m``."""
    _check_max_len(max_len)
    if isinstance(msg, Keepalive):
        return build_keepalive()
    if isinstance(msg, Notification):
        return build_notification(msg.code, msg.subcode, msg.data)
    if isinstance(msg, RouteRefresh):
        return build_route_refresh(msg.afi, msg.safi, msg.subtype)
    if isinstance(msg, Open):
        if msg.version != 4:
            raise ValueError("only BGP version 4 is encoded")
        body = b"".join(bytes([c.code, len(c.value)]) + bytes(c.value) for c in msg.capabilities)
        params = bytes([2, len(body)]) + body if msg.capabilities else b""
        if len(body) > 253:
            raise ValueError("capabilities exceed one optional parameter")
        fixed = struct.pack("!BHHIB", 4, _u(msg.my_as, 16, "my_as"), _u(msg.hold_time, 16, "hold_time"),
                            _u(msg.router_id, 32, "router_id"), len(params))
        return _header(BGP_HEADER_LEN + len(fixed) + len(params), MsgType.OPEN) + fixed + params
    if isinstance(msg, Update):
        withdrawn = b"".join(_prefix_bytes(*_prefix(p, 32), 32) for p in msg.withdrawn)
        nlri = b"".join(_prefix_bytes(*_prefix(p, 32), 32) for p in msg.nlri)
        items = _attr_list(msg.attrs, as4) if msg.attrs is not None else []
        if msg.mp_reach is not None:
            r = msg.mp_reach
            bits = _family(r.afi)
            value = struct.pack("!HB", r.afi, _u(r.safi, 8, "safi")) + _mp_len_nh(r) + b"\x00" + b"".join(
                _prefix_bytes(*_prefix(p, bits), bits) for p in r.nlri)
            items.append((AttrType.MP_REACH_NLRI, _attr(_OPT_NONTRANS, AttrType.MP_REACH_NLRI, value)))
        if msg.mp_unreach is not None:
            u = msg.mp_unreach
            bits = _family(u.afi)
            value = struct.pack("!HB", u.afi, _u(u.safi, 8, "safi")) + b"".join(
                _prefix_bytes(*_prefix(p, bits), bits) for p in u.withdrawn)
            items.append((AttrType.MP_UNREACH_NLRI, _attr(_OPT_NONTRANS, AttrType.MP_UNREACH_NLRI, value)))
        items.sort(key=lambda t: t[0])
        out = _update(withdrawn, b"".join(v for _, v in items), nlri)
        if len(out) > max_len:
            raise ValueError(f"UPDATE of {len(out)} bytes exceeds max_len {max_len}")
        return out
    raise ValueError(f"not a BGP message value: {msg!r}")


def _mp_len_nh(r: MpReach) -> bytes:
    nh = _mp_next_hop(r.next_hop, r.afi)
    return bytes([len(nh)]) + nh


__all__ = [
    "build_keepalive", "build_notification", "build_route_refresh", "build_open", "encode_attrs", "pack_updates",
    "pack_withdrawals", "build_end_of_rib", "encode",
]
