"""Interim BGP message codec used by the session FSM until ``fastpath.bgp`` (issue 7) is merged.

Only what the session needs: framing, OPEN with capabilities, KEEPALIVE, NOTIFICATION, ROUTE-REFRESH, UPDATE
packing (IPv4 NLRI and MP_REACH/MP_UNREACH for IPv6) and End-of-RIB; decoders raise only ``BgpError``.
Once ``fastpath.bgp`` lands, ``fastpath.session`` takes its codec from there and this module goes away.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

MARKER = b"\xff" * 16
HEADER_LEN = 19
MAX_MESSAGE = 4096
MAX_EXTENDED = 65535
AS_TRANS = 23456

OPEN, UPDATE, NOTIFICATION, KEEPALIVE, ROUTE_REFRESH = 1, 2, 3, 4, 5

# NOTIFICATION codes (RFC 4271 §4.5, §6)
HEADER_ERROR, OPEN_ERROR, UPDATE_ERROR, HOLD_EXPIRED, FSM_ERROR, CEASE = 1, 2, 3, 4, 5, 6
# header subcodes
CONN_NOT_SYNC, BAD_LENGTH, BAD_TYPE = 1, 2, 3
# OPEN subcodes
UNSUPPORTED_VERSION, BAD_PEER_AS, BAD_BGP_ID, UNSUPPORTED_OPT_PARAM, UNACCEPTABLE_HOLD = 1, 2, 3, 4, 6
# UPDATE subcodes
MALFORMED_ATTR_LIST = 1
# Cease subcodes (RFC 4486)
ADMIN_SHUTDOWN, ADMIN_RESET = 2, 4

CAP_MP, CAP_ROUTE_REFRESH, CAP_EXT_MSG, CAP_GR, CAP_AS4 = 1, 2, 6, 64, 65
AFI_IPV4, AFI_IPV6, SAFI_UNICAST = 1, 2, 1


class BgpError(Exception):
    """A protocol error; ``code``/``subcode``/``data`` are what the NOTIFICATION carries (RFC 4271 §6)."""

    def __init__(self, code: int, subcode: int = 0, data: bytes = b"", message: str = "") -> None:
        super().__init__(message or f"BGP error {code}/{subcode}")
        self.code = code
        self.subcode = subcode
        self.data = data


@dataclass
class Open:
    version: int
    asn: int  # 4-octet AS from capability 65 when present, else the 2-octet field
    hold_time: int
    router_id: str
    capabilities: dict[int, list[bytes]] = field(default_factory=dict)

    @property
    def four_octet(self) -> bool:
        return CAP_AS4 in self.capabilities

    @property
    def families(self) -> set[tuple[int, int]]:
        out = set()
        for v in self.capabilities.get(CAP_MP, []):
            if len(v) == 4:
                afi, _, safi = struct.unpack("!HBB", v)
                out.add((afi, safi))
        return out


@dataclass
class Notification:
    code: int
    subcode: int
    data: bytes = b""


@dataclass
class Keepalive:
    pass


@dataclass
class RouteRefresh:
    afi: int
    safi: int


@dataclass
class Update:
    body: bytes


def _frame(msg_type: int, body: bytes) -> bytes:
    return MARKER + struct.pack("!HB", HEADER_LEN + len(body), msg_type) + body


def build_keepalive() -> bytes:
    return _frame(KEEPALIVE, b"")


def build_notification(code: int, subcode: int = 0, data: bytes = b"") -> bytes:
    return _frame(NOTIFICATION, struct.pack("!BB", code, subcode) + data[: MAX_MESSAGE - 21])


def build_route_refresh(afi: int, safi: int = SAFI_UNICAST) -> bytes:
    return _frame(ROUTE_REFRESH, struct.pack("!HBB", afi, 0, safi))


def build_open(
    asn: int,
    hold_time: int,
    router_id: str,
    *,
    families: tuple[tuple[int, int], ...] = ((AFI_IPV4, SAFI_UNICAST), (AFI_IPV6, SAFI_UNICAST)),
    route_refresh: bool = True,
    extended_message: bool = True,
    graceful_restart: tuple[int, bool] | None = (120, False),
) -> bytes:
    """OPEN with one optional parameter holding all capabilities. ``graceful_restart`` = (restart time, R bit)."""
    caps = b""
    for afi, safi in families:
        caps += struct.pack("!BBHBB", CAP_MP, 4, afi, 0, safi)
    if route_refresh:
        caps += struct.pack("!BB", CAP_ROUTE_REFRESH, 0)
    if extended_message:
        caps += struct.pack("!BB", CAP_EXT_MSG, 0)
    if graceful_restart is not None:
        rtime, restarting = graceful_restart
        gr = struct.pack("!H", (0x8000 if restarting else 0) | (rtime & 0x0FFF))
        for afi, safi in families:
            gr += struct.pack("!HBB", afi, safi, 0x80)  # forwarding state preserved
        caps += struct.pack("!BB", CAP_GR, len(gr)) + gr
    caps += struct.pack("!BBI", CAP_AS4, 4, asn)
    param = struct.pack("!BB", 2, len(caps)) + caps
    my_as = asn if asn <= 0xFFFF else AS_TRANS
    body = struct.pack("!BHH4sB", 4, my_as, hold_time, ipaddress.IPv4Address(router_id).packed, len(param)) + param
    return _frame(OPEN, body)


def _parse_open(body: bytes) -> Open:
    if len(body) < 10:
        raise BgpError(HEADER_ERROR, BAD_LENGTH, struct.pack("!H", HEADER_LEN + len(body)))
    version, my_as, hold, rid, plen = struct.unpack("!BHH4sB", body[:10])
    if version != 4:
        raise BgpError(OPEN_ERROR, UNSUPPORTED_VERSION, struct.pack("!H", 4), "unsupported BGP version")
    params = body[10:]
    if len(params) != plen:
        raise BgpError(OPEN_ERROR, 0, b"", "optional parameters length mismatch")
    caps: dict[int, list[bytes]] = {}
    i = 0
    while i < plen:
        if i + 2 > plen:
            raise BgpError(OPEN_ERROR, 0, b"", "truncated optional parameter")
        ptype, pl = params[i], params[i + 1]
        pv = params[i + 2 : i + 2 + pl]
        if len(pv) != pl:
            raise BgpError(OPEN_ERROR, 0, b"", "truncated optional parameter")
        i += 2 + pl
        if ptype != 2:
            raise BgpError(OPEN_ERROR, UNSUPPORTED_OPT_PARAM, b"", f"unsupported optional parameter {ptype}")
        j = 0
        while j < len(pv):
            if j + 2 > len(pv):
                raise BgpError(OPEN_ERROR, 0, b"", "truncated capability")
            ct, cl = pv[j], pv[j + 1]
            cv = pv[j + 2 : j + 2 + cl]
            if len(cv) != cl:
                raise BgpError(OPEN_ERROR, 0, b"", "truncated capability")
            caps.setdefault(ct, []).append(cv)
            j += 2 + cl
    asn = my_as
    if CAP_AS4 in caps:
        v = caps[CAP_AS4][0]
        if len(v) != 4:
            raise BgpError(OPEN_ERROR, 0, b"", "bad 4-octet AS capability")
        asn = struct.unpack("!I", v)[0]
    router_id = str(ipaddress.IPv4Address(rid))
    if rid == b"\0\0\0\0":
        raise BgpError(OPEN_ERROR, BAD_BGP_ID, b"", "router id 0.0.0.0")
    if hold in (1, 2):
        raise BgpError(OPEN_ERROR, UNACCEPTABLE_HOLD, b"", f"hold time {hold}")
    return Open(version, asn, hold, router_id, caps)


def split_messages(buf: bytearray, max_len: int = MAX_MESSAGE) -> list[tuple[int, bytes]]:
    """Remove complete messages from ``buf``; returns (type, body) pairs. Raises ``BgpError`` on a bad header."""
    out = []
    while len(buf) >= HEADER_LEN:
        if bytes(buf[:16]) != MARKER:
            raise BgpError(HEADER_ERROR, CONN_NOT_SYNC, b"", "marker is not all ones")
        length, mtype = struct.unpack_from("!HB", buf, 16)
        if length < HEADER_LEN or length > max_len:
            raise BgpError(HEADER_ERROR, BAD_LENGTH, struct.pack("!H", length), f"bad message length {length}")
        if len(buf) < length:
            break
        body = bytes(buf[HEADER_LEN:length])
        del buf[:length]
        out.append((mtype, body))
    return out


def parse_body(mtype: int, body: bytes) -> Open | Update | Notification | Keepalive | RouteRefresh:
    n = HEADER_LEN + len(body)
    if mtype == OPEN:
        return _parse_open(body)
    if mtype == KEEPALIVE:
        if body:
            raise BgpError(HEADER_ERROR, BAD_LENGTH, struct.pack("!H", n), "KEEPALIVE with a body")
        return Keepalive()
    if mtype == NOTIFICATION:
        if len(body) < 2:
            raise BgpError(HEADER_ERROR, BAD_LENGTH, struct.pack("!H", n), "short NOTIFICATION")
        return Notification(body[0], body[1], body[2:])
    if mtype == ROUTE_REFRESH:
        if len(body) != 4:
            raise BgpError(HEADER_ERROR, BAD_LENGTH, struct.pack("!H", n), "bad ROUTE-REFRESH length")
        afi, _, safi = struct.unpack("!HBB", body)
        return RouteRefresh(afi, safi)
    if mtype == UPDATE:
        if len(body) < 4:
            raise BgpError(HEADER_ERROR, BAD_LENGTH, struct.pack("!H", n), "short UPDATE")
        wl = struct.unpack_from("!H", body, 0)[0]
        if 2 + wl + 2 > len(body):
            raise BgpError(UPDATE_ERROR, MALFORMED_ATTR_LIST, b"", "withdrawn routes length too long")
        al = struct.unpack_from("!H", body, 2 + wl)[0]
        if 4 + wl + al > len(body):
            raise BgpError(UPDATE_ERROR, MALFORMED_ATTR_LIST, b"", "path attribute length too long")
        return Update(body)
    raise BgpError(HEADER_ERROR, BAD_TYPE, bytes([mtype]), f"unknown message type {mtype}")


# --- UPDATE building -------------------------------------------------------------------------------------------


def _attr(flags: int, code: int, value: bytes) -> bytes:
    if len(value) > 255:
        return struct.pack("!BBH", flags | 0x10, code, len(value)) + value
    return struct.pack("!BBB", flags, code, len(value)) + value


def _nlri(prefix: str) -> bytes:
    net = ipaddress.ip_network(prefix, strict=False)
    plen = net.prefixlen
    return bytes([plen]) + net.network_address.packed[: (plen + 7) // 8]


def _path_attrs(
    local_as: int,
    peer_as: int,
    peer_4byte: bool,
    local_pref: int | None,
    communities: tuple[str, ...],
    med: int | None,
) -> bytes:
    ibgp = local_as == peer_as
    a = _attr(0x40, 1, b"\x00")  # ORIGIN IGP
    as4path = b""
    if ibgp:
        a += _attr(0x40, 2, b"")
    elif peer_4byte:
        a += _attr(0x40, 2, struct.pack("!BBI", 2, 1, local_as))
    else:
        a += _attr(0x40, 2, struct.pack("!BBH", 2, 1, local_as if local_as <= 0xFFFF else AS_TRANS))
        if local_as > 0xFFFF:
            as4path = _attr(0xC0, 17, struct.pack("!BBI", 2, 1, local_as))
    return a, as4path, ibgp


def build_updates(
    prefixes: list[str],
    *,
    local_as: int,
    peer_as: int,
    next_hop: str,
    peer_4byte: bool = True,
    local_pref: int | None = None,
    communities: tuple[str, ...] = (),
    med: int | None = None,
    max_len: int = MAX_MESSAGE,
) -> list[bytes]:
    """Announce ``prefixes`` (one family) with shared attributes, packed into as few UPDATEs as fit."""
    if not prefixes:
        return []
    base, as4path, ibgp = _path_attrs(local_as, peer_as, peer_4byte, local_pref, communities, med)
    tail = b""
    if med is not None:
        tail += _attr(0x80, 4, struct.pack("!I", med))
    if ibgp:
        tail += _attr(0x40, 5, struct.pack("!I", 100 if local_pref is None else local_pref))
    std = [c for c in communities if not c.startswith("large:")]
    large = [c[6:] for c in communities if c.startswith("large:")]
    if std:
        tail += _attr(0xC0, 8, b"".join(struct.pack("!HH", *map(int, c.split(":"))) for c in std))
    tail += as4path
    if large:
        tail += _attr(0xC0, 32, b"".join(struct.pack("!III", *map(int, c.split(":"))) for c in large))
    v6 = ":" in prefixes[0]
    out = []
    nlris = [_nlri(p) for p in prefixes]
    if not v6:
        attrs = base + _attr(0x40, 3, ipaddress.IPv4Address(next_hop).packed) + tail
        room = max_len - HEADER_LEN - 4 - len(attrs)
        i = 0
        while i < len(nlris):
            chunk, size = [], 0
            while i < len(nlris) and size + len(nlris[i]) <= room:
                chunk.append(nlris[i])
                size += len(nlris[i])
                i += 1
            out.append(_frame(UPDATE, struct.pack("!HH", 0, len(attrs)) + attrs + b"".join(chunk)))
        return out
    nh = ipaddress.IPv6Address(next_hop).packed
    mp_head = struct.pack("!HBB", AFI_IPV6, SAFI_UNICAST, len(nh)) + nh + b"\x00"
    fixed = len(base) + len(tail) + 4 + len(mp_head)  # 4: extended-length MP_REACH header
    room = max_len - HEADER_LEN - 4 - fixed
    i = 0
    while i < len(nlris):
        chunk, size = [], 0
        while i < len(nlris) and size + len(nlris[i]) <= room:
            chunk.append(nlris[i])
            size += len(nlris[i])
            i += 1
        mp = struct.pack("!BBH", 0x90, 14, len(mp_head) + size) + mp_head + b"".join(chunk)
        attrs = base + mp + tail
        out.append(_frame(UPDATE, struct.pack("!HH", 0, len(attrs)) + attrs))
    return out


def build_withdrawals(prefixes: list[str], max_len: int = MAX_MESSAGE) -> list[bytes]:
    """Withdraw ``prefixes`` (one family), packed."""
    if not prefixes:
        return []
    v6 = ":" in prefixes[0]
    nlris = [_nlri(p) for p in prefixes]
    out = []
    room = max_len - HEADER_LEN - 4 - (0 if not v6 else 7)
    i = 0
    while i < len(nlris):
        chunk, size = [], 0
        while i < len(nlris) and size + len(nlris[i]) <= room:
            chunk.append(nlris[i])
            size += len(nlris[i])
            i += 1
        data = b"".join(chunk)
        if v6:
            mp = struct.pack("!BBHHB", 0x90, 15, 3 + len(data), AFI_IPV6, SAFI_UNICAST) + data
            out.append(_frame(UPDATE, struct.pack("!HH", 0, len(mp)) + mp))
        else:
            out.append(_frame(UPDATE, struct.pack("!H", len(data)) + data + b"\x00\x00"))
    return out


def build_end_of_rib(afi: int, safi: int = SAFI_UNICAST) -> bytes:
    if afi == AFI_IPV4:
        return _frame(UPDATE, b"\x00\x00\x00\x00")
    mp = struct.pack("!BBBHB", 0x80, 15, 3, afi, safi)
    return _frame(UPDATE, struct.pack("!HH", 0, len(mp)) + mp)
