"""BGP-4 decoders: bytes → ``fastpath.model`` values, or a :class:`~fastpath.model.BgpError` naming the
NOTIFICATION that answers the input (RFC 4271 §6). Nothing else escapes, whatever the input.

Parsing is not hot (a speaker reads few messages), so there is one implementation, shared by both twins.

Rule 1: every read goes through :class:`_Reader`, which checks bounds and raises the ``BgpError`` its caller
chose for "this ran out"; no slicing arithmetic elsewhere can fail.
Rule 2: the error data follows RFC 4271 §6: the bad length field, the bad type, or the erroneous attribute
(flags, type, length and value).
"""

from __future__ import annotations

from fastpath.constants import (
    BGP_HEADER_LEN,
    BGP_MAX_EXTENDED,
    BGP_MAX_MESSAGE,
    Afi,
    AttrType,
    ErrorCode,
    HeaderError,
    MsgType,
    OpenError,
    RouteRefreshError,
    Safi,
    UpdateError,
)
from fastpath.model import (
    Attrs,
    AsSegment,
    BgpError,
    Cap,
    Keepalive,
    Message,
    MpReach,
    MpUnreach,
    Notification,
    Open,
    RouteRefresh,
    Update,
)

_MARKER = b"\xff" * 16

# Expected (optional, transitive) flag bits per recognised attribute (RFC 4271 §5, RFC 4760, 6793, 8092, 1997).
_FLAGS = {
    AttrType.ORIGIN: 0x40, AttrType.AS_PATH: 0x40, AttrType.NEXT_HOP: 0x40, AttrType.MULTI_EXIT_DISC: 0x80,
    AttrType.LOCAL_PREF: 0x40, AttrType.ATOMIC_AGGREGATE: 0x40, AttrType.AGGREGATOR: 0xC0,
    AttrType.COMMUNITIES: 0xC0, AttrType.MP_REACH_NLRI: 0x80, AttrType.MP_UNREACH_NLRI: 0x80,
    AttrType.AS4_PATH: 0xC0, AttrType.AS4_AGGREGATOR: 0xC0, AttrType.LARGE_COMMUNITIES: 0xC0,
}
_WELL_KNOWN = {AttrType.ORIGIN, AttrType.AS_PATH, AttrType.NEXT_HOP, AttrType.LOCAL_PREF, AttrType.ATOMIC_AGGREGATE}
_FIXED_LEN = {AttrType.ORIGIN: 1, AttrType.NEXT_HOP: 4, AttrType.MULTI_EXIT_DISC: 4, AttrType.LOCAL_PREF: 4,
              AttrType.ATOMIC_AGGREGATE: 0, AttrType.AS4_AGGREGATOR: 8}
_CAP_LEN = {1: (4,), 2: (0,), 6: (0,), 65: (4,)}


class _Reader:
    """A bounds-checked cursor over ``data[pos:end]``; ``err`` is raised when a read would run past ``end``."""

    __slots__ = ("data", "pos", "end", "err")

    def __init__(self, data: bytes, pos: int, end: int, err: BgpError) -> None:
        self.data, self.pos, self.end, self.err = data, pos, end, err

    def left(self) -> int:
        return self.end - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise self.err
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")


def message_length(buf: bytes, max_len: int = BGP_MAX_MESSAGE) -> int | None:
    """The length of the message at the start of ``buf``, or ``None`` when fewer than 19 bytes have arrived.

    Checks the marker and the length bounds (RFC 4271 §6.1), so a stream reader never waits on a bad length.
    """
    if len(buf) < BGP_HEADER_LEN:
        return None
    if bytes(buf[:16]) != _MARKER:
        raise BgpError(ErrorCode.MESSAGE_HEADER, HeaderError.CONNECTION_NOT_SYNCHRONIZED, reason="marker not all ones")
    length = int.from_bytes(buf[16:18], "big")
    if length < BGP_HEADER_LEN or length > max_len:
        raise BgpError(ErrorCode.MESSAGE_HEADER, HeaderError.BAD_MESSAGE_LENGTH, bytes(buf[16:18]),
                       f"length {length} outside 19..{max_len}")
    return length


def split(buf: bytes, max_len: int = BGP_MAX_MESSAGE) -> tuple[list[bytes], int]:
    """Cut the complete messages off the front of a TCP byte stream: (messages, bytes consumed)."""
    out, pos = [], 0
    view = bytes(buf)
    while True:
        n = message_length(view[pos:pos + BGP_HEADER_LEN], max_len)
        if n is None or pos + n > len(view):
            return out, pos
        out.append(view[pos:pos + n])
        pos += n


def decode(data: bytes, *, as4: bool = True, max_len: int = BGP_MAX_EXTENDED) -> Message:
    """Decode exactly one BGP message.

    ``as4``: the session negotiated 4-octet ASNs (AS_PATH has 4-byte ASNs). ``max_len``: the largest message
    accepted (4096, or 65535 after RFC 8654 negotiation; OPEN and KEEPALIVE are always limited to 4096).
    """
    try:
        data = bytes(data)
    except (TypeError, ValueError):
        raise BgpError(ErrorCode.MESSAGE_HEADER, HeaderError.BAD_MESSAGE_LENGTH, reason="not bytes") from None
    if len(data) < BGP_HEADER_LEN:
        raise BgpError(ErrorCode.MESSAGE_HEADER, HeaderError.BAD_MESSAGE_LENGTH, data[16:18],
                       f"{len(data)} bytes, shorter than the header")
    length = message_length(data, max_len)
    assert length is not None
    if length != len(data):
        raise BgpError(ErrorCode.MESSAGE_HEADER, HeaderError.BAD_MESSAGE_LENGTH, data[16:18],
                       f"length field {length} but {len(data)} bytes")
    kind = data[18]
    bad_len = BgpError(ErrorCode.MESSAGE_HEADER, HeaderError.BAD_MESSAGE_LENGTH, data[16:18],
                       f"length {length} invalid for message type {kind}")
    if kind == MsgType.KEEPALIVE:
        if length != BGP_HEADER_LEN:
            raise bad_len
        return Keepalive()
    if kind == MsgType.OPEN:
        if length < 29 or length > BGP_MAX_MESSAGE:
            raise bad_len
        return _open(data)
    if kind == MsgType.UPDATE:
        if length < 23:
            raise bad_len
        return _update(data, as4)
    if kind == MsgType.NOTIFICATION:
        if length < 21:
            raise bad_len
        return Notification(code=data[19], subcode=data[20], data=data[21:])
    if kind == MsgType.ROUTE_REFRESH:
        if length != 23:
            # RFC 7313 §5: the data is the whole ROUTE-REFRESH message.
            raise BgpError(ErrorCode.ROUTE_REFRESH_MESSAGE, RouteRefreshError.INVALID_MESSAGE_LENGTH, data,
                           f"ROUTE-REFRESH of {length} bytes, need 23")
        return RouteRefresh(afi=int.from_bytes(data[19:21], "big"), safi=data[22], subtype=data[21])
    raise BgpError(ErrorCode.MESSAGE_HEADER, HeaderError.BAD_MESSAGE_TYPE, bytes([kind]), f"message type {kind}")


def _open(data: bytes) -> Open:
    # RFC 4271 §4.2: version, My AS, hold time, BGP identifier, optional parameters length, parameters.
    version = data[19]
    if version != 4:
        raise BgpError(ErrorCode.OPEN_MESSAGE, OpenError.UNSUPPORTED_VERSION, b"\x00\x04", f"version {version}")
    my_as = int.from_bytes(data[20:22], "big")
    hold = int.from_bytes(data[22:24], "big")
    router_id = int.from_bytes(data[24:28], "big")
    opt_len = data[28]
    malformed = BgpError(ErrorCode.OPEN_MESSAGE, OpenError.UNSPECIFIC, reason="malformed optional parameters")
    if 29 + opt_len != len(data):
        raise malformed
    if hold in (1, 2):
        raise BgpError(ErrorCode.OPEN_MESSAGE, OpenError.UNACCEPTABLE_HOLD_TIME, reason=f"hold time {hold}")
    if router_id == 0:  # RFC 6286 §2.2: a non-zero 4-octet value
        raise BgpError(ErrorCode.OPEN_MESSAGE, OpenError.BAD_BGP_IDENTIFIER, reason="BGP identifier 0")
    caps: list[Cap] = []
    r = _Reader(data, 29, len(data), malformed)
    while r.left():
        ptype, plen = r.u8(), r.u8()
        pvalue = r.take(plen)
        if ptype != 2:
            raise BgpError(ErrorCode.OPEN_MESSAGE, OpenError.UNSUPPORTED_OPTIONAL_PARAMETER,
                           reason=f"optional parameter type {ptype}")
        c = _Reader(pvalue, 0, len(pvalue), malformed)
        while c.left():
            code, clen = c.u8(), c.u8()
            value = c.take(clen)
            ok = _CAP_LEN.get(code)
            if (ok is not None and clen not in ok) or (code == 64 and (clen < 2 or (clen - 2) % 4)):
                raise BgpError(ErrorCode.OPEN_MESSAGE, OpenError.UNSPECIFIC, reason=f"capability {code} of {clen} bytes")
            caps.append(Cap(code=code, value=value))
    return Open(my_as=my_as, hold_time=hold, router_id=router_id, capabilities=tuple(caps), version=version)


def _prefixes(data: bytes, bits: int, err: BgpError) -> tuple[tuple[int, int], ...]:
    # RFC 4271 §4.3: each prefix is a length in bits and the fewest bytes that hold it; trailing bits ignored.
    r = _Reader(data, 0, len(data), err)
    out = []
    while r.left():
        plen = r.u8()
        if plen > bits:
            raise err
        n = (plen + 7) // 8
        addr = int.from_bytes(r.take(n), "big") << (bits - 8 * n)
        if plen < bits:
            addr &= ~((1 << (bits - plen)) - 1)
        out.append((addr, plen))
    return tuple(out)


def _segments(value: bytes, width: int, err: BgpError) -> tuple[AsSegment, ...]:
    r = _Reader(value, 0, len(value), err)
    segs = []
    while r.left():
        kind, count = r.u8(), r.u8()
        if kind not in (1, 2, 3, 4) or count == 0:
            raise err
        raw = r.take(count * width)
        segs.append(AsSegment(kind, tuple(int.from_bytes(raw[i:i + width], "big") for i in range(0, len(raw), width))))
    return tuple(segs)


def _update(data: bytes, as4: bool) -> Update:
    # RFC 4271 §4.3: withdrawn length, withdrawn routes, total attribute length, attributes, NLRI.
    length = len(data)
    malformed = BgpError(ErrorCode.UPDATE_MESSAGE, UpdateError.MALFORMED_ATTRIBUTE_LIST,
                         reason="withdrawn/attribute lengths overrun the message")
    wlen = int.from_bytes(data[19:21], "big")
    if 23 + wlen > length:
        raise malformed
    alen = int.from_bytes(data[21 + wlen:23 + wlen], "big")
    if 23 + wlen + alen > length:
        raise malformed
    bad_net = BgpError(ErrorCode.UPDATE_MESSAGE, UpdateError.INVALID_NETWORK_FIELD, reason="bad prefix")
    withdrawn = _prefixes(data[21:21 + wlen], 32, bad_net)
    nlri = _prefixes(data[23 + wlen + alen:], 32, bad_net)
    fields: dict[str, object] = {}
    other: list[tuple[int, int, bytes]] = []
    seen: set[int] = set()
    mp_reach = mp_unreach = None
    r = _Reader(data, 23 + wlen, 23 + wlen + alen, malformed)
    while r.left():
        start = r.pos
        flags, kind = r.u8(), r.u8()
        alen_i = r.u16() if flags & 0x10 else r.u8()
        if alen_i > r.left():
            raise BgpError(ErrorCode.UPDATE_MESSAGE, UpdateError.ATTRIBUTE_LENGTH_ERROR, data[start:r.end],
                           f"attribute {kind} length {alen_i} overruns the attributes")
        value = r.take(alen_i)
        whole = data[start:r.pos]
        if kind in seen:
            raise BgpError(ErrorCode.UPDATE_MESSAGE, UpdateError.MALFORMED_ATTRIBUTE_LIST, reason=f"attribute {kind} twice")
        seen.add(kind)
        expected = _FLAGS.get(kind)
        if expected is None:
            if not flags & 0x80:  # RFC 4271 §6.3: an unrecognised well-known attribute
                raise BgpError(ErrorCode.UPDATE_MESSAGE, UpdateError.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE, whole,
                               f"unknown well-known attribute {kind}")
            other.append((flags & ~0x10, kind, value))
            continue
        if flags & 0xC0 != expected or (kind in _WELL_KNOWN and flags & 0x20):
            raise BgpError(ErrorCode.UPDATE_MESSAGE, UpdateError.ATTRIBUTE_FLAGS_ERROR, whole,
                           f"attribute {kind} flags {flags:#04x}")
        fixed = _FIXED_LEN.get(kind)
        if kind == AttrType.AGGREGATOR:
            fixed = 8 if as4 else 6
        if fixed is not None and alen_i != fixed:
            raise BgpError(ErrorCode.UPDATE_MESSAGE, UpdateError.ATTRIBUTE_LENGTH_ERROR, whole,
                           f"attribute {kind} of {alen_i} bytes, need {fixed}")
        opt_err = BgpError(ErrorCode.UPDATE_MESSAGE, UpdateError.OPTIONAL_ATTRIBUTE_ERROR, whole,
                           f"malformed attribute {kind}")
        if kind == AttrType.ORIGIN:
            if value[0] > 2:
                raise BgpError(ErrorCode.UPDATE_MESSAGE, UpdateError.INVALID_ORIGIN, whole, f"ORIGIN {value[0]}")
            fields["origin"] = value[0]
        elif kind == AttrType.AS_PATH:
            fields["as_path"] = _segments(value, 4 if as4 else 2, BgpError(
                ErrorCode.UPDATE_MESSAGE, UpdateError.MALFORMED_AS_PATH, reason="malformed AS_PATH"))
        elif kind == AttrType.NEXT_HOP:
            fields["next_hop"] = int.from_bytes(value, "big")
        elif kind == AttrType.MULTI_EXIT_DISC:
            fields["med"] = int.from_bytes(value, "big")
        elif kind == AttrType.LOCAL_PREF:
            fields["local_pref"] = int.from_bytes(value, "big")
        elif kind == AttrType.ATOMIC_AGGREGATE:
            fields["atomic_aggregate"] = True
        elif kind == AttrType.COMMUNITIES:
            if alen_i % 4:
                raise opt_err
            fields["communities"] = tuple(int.from_bytes(value[i:i + 4], "big") for i in range(0, alen_i, 4))
        elif kind == AttrType.AS4_PATH:
            fields["as4_path"] = _segments(value, 4, opt_err)
        elif kind == AttrType.LARGE_COMMUNITIES:
            if alen_i % 12:
                raise opt_err
            fields["large_communities"] = tuple(
                tuple(int.from_bytes(value[i + j:i + j + 4], "big") for j in (0, 4, 8)) for i in range(0, alen_i, 12))
        elif kind == AttrType.MP_REACH_NLRI:
            mp_reach = _mp_reach(value, opt_err)
        elif kind == AttrType.MP_UNREACH_NLRI:
            mp_unreach = _mp_unreach(value, opt_err)
        else:  # AGGREGATOR, AS4_AGGREGATOR: recognised, checked, kept raw
            other.append((flags & ~0x10, kind, value))
    attrs = None
    if set(seen) - {AttrType.MP_REACH_NLRI, AttrType.MP_UNREACH_NLRI}:
        fields.setdefault("origin", None)
        fields.setdefault("as_path", None)
        attrs = Attrs(other=tuple(sorted(other, key=lambda t: t[1])), **fields)  # type: ignore[arg-type]
    # RFC 4271 §6.3 / RFC 4760 §3: mandatory well-known attributes when something is announced.
    if nlri or mp_reach is not None:
        needed = [AttrType.ORIGIN, AttrType.AS_PATH] + ([AttrType.NEXT_HOP] if nlri else [])
        for t in needed:
            if t not in seen:
                raise BgpError(ErrorCode.UPDATE_MESSAGE, UpdateError.MISSING_WELL_KNOWN_ATTRIBUTE, bytes([t]),
                               f"missing well-known attribute {t}")
    return Update(withdrawn=withdrawn, attrs=attrs, nlri=nlri, mp_reach=mp_reach, mp_unreach=mp_unreach)


def _family_bits(afi: int, safi: int, err: BgpError) -> int:
    if safi != Safi.UNICAST or afi not in (Afi.IPV4, Afi.IPV6):
        raise err
    return 32 if afi == Afi.IPV4 else 128


def _mp_reach(value: bytes, err: BgpError) -> MpReach:
    # RFC 4760 §3: AFI, SAFI, next-hop length, next hop, one reserved byte, NLRI.
    r = _Reader(value, 0, len(value), err)
    afi, safi = r.u16(), r.u8()
    bits = _family_bits(afi, safi, err)
    nhl = r.u8()
    if nhl not in ((4,) if afi == Afi.IPV4 else (16, 32)):
        raise err
    nh = r.take(nhl)
    r.u8()
    hops = tuple(int.from_bytes(nh[i:i + bits // 8], "big") for i in range(0, nhl, bits // 8))
    return MpReach(afi=afi, safi=safi, next_hop=hops, nlri=_prefixes(r.take(r.left()), bits, err))


def _mp_unreach(value: bytes, err: BgpError) -> MpUnreach:
    # RFC 4760 §4: AFI, SAFI, withdrawn routes.
    r = _Reader(value, 0, len(value), err)
    afi, safi = r.u16(), r.u8()
    bits = _family_bits(afi, safi, err)
    return MpUnreach(afi=afi, safi=safi, withdrawn=_prefixes(r.take(r.left()), bits, err))


def is_end_of_rib(msg: Message) -> tuple[int, int] | None:
    """(afi, safi) when ``msg`` is an End-of-RIB marker (RFC 4724 §2), else ``None``."""
    if not isinstance(msg, Update) or msg.withdrawn or msg.nlri or msg.attrs is not None or msg.mp_reach:
        return None
    if msg.mp_unreach is None:
        return (Afi.IPV4, Safi.UNICAST)
    if not msg.mp_unreach.withdrawn:
        return (msg.mp_unreach.afi, msg.mp_unreach.safi)
    return None
