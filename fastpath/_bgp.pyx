# cython: language_level=3
"""BGP-4 builders and the UPDATE packer, compiled. Same API, same bytes and same split points as
``fastpath._bgp_py`` (the spec; read it first).

The packer converts the prefixes once into a C array (network, length, encoded size), computes the split points
greedily, then allocates each message exactly once and fills it through a ``char*``: the attributes are encoded
once per batch and copied into every message. Argument errors are ``ValueError``, as in the twin.
"""

import struct

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.long cimport PyLong_AsLong, PyLong_AsUnsignedLongLong
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject
from cpython.sequence cimport (
    PySequence_Fast, PySequence_Fast_GET_ITEM, PySequence_Fast_GET_SIZE, PySequence_Fast_ITEMS,
)
from cpython.tuple cimport PyTuple_CheckExact, PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from fastpath._pack cimport fastpath_hosts32, fastpath_u32, put_u16, put_u32



from fastpath import constants as _c
from fastpath.model import Attrs, metallb_capabilities

cdef Py_ssize_t HDR = _c.BGP_HEADER_LEN
cdef uint16_t AS_TRANS = _c.AS_TRANS
cdef uint8_t T_UPDATE = _c.MsgType.UPDATE
cdef uint8_t T_OPEN = _c.MsgType.OPEN
cdef uint8_t T_NOTIFICATION = _c.MsgType.NOTIFICATION
cdef uint8_t T_KEEPALIVE = _c.MsgType.KEEPALIVE
cdef uint8_t T_ROUTE_REFRESH = _c.MsgType.ROUTE_REFRESH
cdef uint8_t A_MP_REACH = _c.AttrType.MP_REACH_NLRI
cdef uint8_t A_MP_UNREACH = _c.AttrType.MP_UNREACH_NLRI
cdef int MAX_MSG = _c.BGP_MAX_MESSAGE
cdef int MAX_EXT = _c.BGP_MAX_EXTENDED

cdef enum:
    # attribute flag bits (optional, transitive), RFC 4271 §4.3
    WELL_KNOWN = 0x40
    OPT_TRANS = 0xC0
    OPT_NONTRANS = 0x80

cdef enum:
    # how the packer lays out messages (see _pack)
    MODE_NLRI4 = 0
    MODE_WITHDRAW4 = 1
    MODE_MP_REACH = 2
    MODE_MP_UNREACH = 3


cdef struct Enc:
    # The prefixes of one call, encoded once (RFC 4271 §4.3: length byte + the fewest address bytes), back to back.
    unsigned char *buf    # all encoded prefixes, in input order
    uint8_t *size         # encoded size of prefix i (2..17 bytes)
    Py_ssize_t n          # number of prefixes


cdef inline void _header(unsigned char *p, Py_ssize_t length, uint8_t kind) noexcept nogil:
    # RFC 4271 §4.1: marker (16 bytes of ones), length, type.
    memset(p, 0xFF, 16)
    put_u16(p + 16, <uint16_t>length)
    p[18] = kind


cdef int _check_max_len(object max_len) except -1:
    if not isinstance(max_len, int) or not MAX_MSG <= max_len <= MAX_EXT:
        raise ValueError(f"max_len must be in 4096..65535, got {max_len!r}")
    return <int>max_len


cdef object _u(object value, object bits, str name):
    if not isinstance(value, int) or not 0 <= value < (1 << bits):
        raise ValueError(f"{name} must be an int in 0..{(1 << bits) - 1}, got {value!r}")
    return value


def build_keepalive():
    """KEEPALIVE: the 19-byte header alone (RFC 4271 §4.4)."""
    cdef bytes out = PyBytes_FromStringAndSize(NULL, HDR)
    _header(<unsigned char *>PyBytes_AS_STRING(out), HDR, T_KEEPALIVE)
    return out


def build_notification(code, subcode, data=b""):
    """NOTIFICATION (RFC 4271 §4.5): error code, subcode, data."""
    cdef bytes d = bytes(data)
    cdef Py_ssize_t length = HDR + 2 + len(d)
    if length > MAX_MSG:
        raise ValueError(f"NOTIFICATION data of {len(d)} bytes exceeds 4096-byte message")
    _u(code, 8, "code")
    _u(subcode, 8, "subcode")
    cdef bytes out = PyBytes_FromStringAndSize(NULL, length)
    cdef unsigned char *p = <unsigned char *>PyBytes_AS_STRING(out)
    _header(p, length, T_NOTIFICATION)
    p[19] = <uint8_t>code
    p[20] = <uint8_t>subcode
    memcpy(p + 21, PyBytes_AS_STRING(d), len(d))
    return out


def build_route_refresh(afi, safi, subtype=0):
    """ROUTE-REFRESH (RFC 2918 §3; ``subtype`` per RFC 7313 §3, 0 = normal request)."""
    _u(afi, 16, "afi")
    _u(subtype, 8, "subtype")
    _u(safi, 8, "safi")
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 23)
    cdef unsigned char *p = <unsigned char *>PyBytes_AS_STRING(out)
    _header(p, 23, T_ROUTE_REFRESH)
    put_u16(p + 19, <uint16_t>afi)
    p[21] = <uint8_t>subtype
    p[22] = <uint8_t>safi
    return out


def build_open(asn, hold_time, router_id, capabilities=None):
    """OPEN (RFC 4271 §4.2) with all capabilities in one Capabilities optional parameter (RFC 5492), as MetalLB.

    ``capabilities`` defaults to MetalLB's set (:func:`fastpath.model.metallb_capabilities`). My-AS is ``asn``,
    or AS_TRANS when it needs 4 octets (RFC 6793 §4.1).
    """
    _u(asn, 32, "asn")
    _u(hold_time, 16, "hold_time")
    _u(router_id, 32, "router_id")
    if hold_time in (1, 2):
        raise ValueError("hold time must be 0 or at least 3 seconds (RFC 4271 §4.2)")
    caps = metallb_capabilities(asn) if capabilities is None else tuple(capabilities)
    cdef bytearray body = bytearray()
    for cap in caps:
        value = bytes(cap.value)
        if len(value) > 255:
            raise ValueError(f"capability {cap.code} value longer than 255 bytes")
        body.append(_u(cap.code, 8, "capability code"))
        body.append(len(value))
        body += value
    if len(body) > 253:
        raise ValueError("capabilities exceed one optional parameter (253 bytes)")
    cdef Py_ssize_t plen = len(body) + 2 if caps else 0
    cdef Py_ssize_t length = HDR + 10 + plen
    cdef bytes out = PyBytes_FromStringAndSize(NULL, length)
    cdef unsigned char *p = <unsigned char *>PyBytes_AS_STRING(out)
    _header(p, length, T_OPEN)
    p[19] = 4
    put_u16(p + 20, <uint16_t>(asn if asn <= 0xFFFF else AS_TRANS))
    put_u16(p + 22, <uint16_t>hold_time)
    put_u32(p + 24, <uint32_t>router_id)
    p[28] = <uint8_t>plen
    if caps:
        p[29] = 2
        p[30] = <uint8_t>len(body)
        memcpy(p + 31, <char *>body, len(body))
    return out


# --- path attributes (once per batch; Python-level code, compiled) ---------------------------------------------------

cdef bytes _attr(int flags, int kind, bytes value):
    cdef Py_ssize_t n = len(value)
    if n > 0xFFFF:
        raise ValueError(f"attribute {kind} value of {n} bytes exceeds 65535")
    if n > 255:
        return bytes([flags | 0x10, kind, n >> 8, n & 0xFF]) + value
    return bytes([flags & ~0x10, kind, n]) + value


cdef bytes _segments(object segs, int width, str name):
    cdef bytearray out = bytearray()
    for seg in segs:
        _u(seg.kind, 8, "segment type")
        if not 1 <= len(seg.asns) <= 255:
            raise ValueError(f"{name} segment must hold 1..255 ASNs, got {len(seg.asns)}")
        out.append(seg.kind)
        out.append(len(seg.asns))
        for asn in seg.asns:
            if width == 2 and not (isinstance(asn, int) and 0 <= asn <= 0xFFFF):
                raise ValueError(f"ASN {asn!r} needs 4 octets: a 2-octet peer gets AS_TRANS (use make_attrs)")
            out += _u(asn, 32, "ASN").to_bytes(width, "big")
    return bytes(out)


cdef list _attr_list(object attrs, bint as4):
    if not isinstance(attrs, Attrs):
        raise ValueError(f"attrs must be a fastpath.model.Attrs, got {type(attrs).__name__}")
    cdef list out = []
    if attrs.origin is not None:
        out.append((1, _attr(WELL_KNOWN, 1, bytes([_u(attrs.origin, 8, "origin")]))))
    if attrs.as_path is not None:
        out.append((2, _attr(WELL_KNOWN, 2, _segments(attrs.as_path, 4 if as4 else 2, "AS_PATH"))))
    if attrs.next_hop is not None:
        out.append((3, _attr(WELL_KNOWN, 3, _u(attrs.next_hop, 32, "next_hop").to_bytes(4, "big"))))
    if attrs.med is not None:
        out.append((4, _attr(OPT_NONTRANS, 4, _u(attrs.med, 32, "med").to_bytes(4, "big"))))
    if attrs.local_pref is not None:
        out.append((5, _attr(WELL_KNOWN, 5, _u(attrs.local_pref, 32, "local_pref").to_bytes(4, "big"))))
    if attrs.atomic_aggregate:
        out.append((6, _attr(WELL_KNOWN, 6, b"")))
    if attrs.communities:
        out.append((8, _attr(OPT_TRANS, 8, b"".join([_u(c, 32, "community").to_bytes(4, "big")
                                                     for c in attrs.communities]))))
    if attrs.as4_path:
        out.append((17, _attr(OPT_TRANS, 17, _segments(attrs.as4_path, 4, "AS4_PATH"))))
    if attrs.large_communities:
        value = bytearray()
        for lc in attrs.large_communities:
            if len(lc) != 3:
                raise ValueError(f"large community must be 3 ints, got {lc!r}")
            for x in lc:
                value += _u(x, 32, "large community part").to_bytes(4, "big")
        out.append((32, _attr(OPT_TRANS, 32, bytes(value))))
    known = {k for k, _ in out}
    for flags, kind, value in attrs.other:
        _u(flags, 8, "flags")
        if _u(kind, 8, "type") in known or kind in (14, 15):
            raise ValueError(f"attribute type {kind} given twice")
        known.add(kind)
        out.append((kind, _attr(flags, kind, bytes(value))))
    out.sort(key=lambda t: t[0])
    return out


def encode_attrs(attrs, as4=True):
    """The path-attribute block for ``attrs`` (RFC 4271 §4.3), in type-code order, without MP_REACH/MP_UNREACH."""
    return b"".join([v for _, v in _attr_list(attrs, as4)])


# --- prefixes -------------------------------------------------------------------------------------------------------

cdef object _prefix_slow(object item, object bits):
    # The twin's rules exactly, for anything that is not a plain (int, int) tuple.
    if isinstance(item, int):
        addr, plen = item, bits
    else:
        try:
            addr, plen = item
        except (TypeError, ValueError):
            raise ValueError(f"prefix must be (network, length) or an int, got {item!r}") from None
    if not isinstance(plen, int) or not 0 <= plen <= bits:
        raise ValueError(f"prefix length must be in 0..{bits}, got {plen!r}")
    if not isinstance(addr, int) or not 0 <= addr < (1 << bits):
        raise ValueError(f"prefix address must be an int in 0..2**{bits}-1, got {addr!r}")
    if addr & ((1 << (bits - plen)) - 1):
        raise ValueError(f"prefix {addr:#x}/{plen} has bits set past its length")
    return addr, plen


cdef int _collect(object prefixes, int bits, Enc *e) except -1:
    """Encode every prefix into ``e`` (the caller frees ``e.buf`` and ``e.size``); ValueError like the twin."""
    cdef object seq = PySequence_Fast(prefixes, "prefixes must be a sequence")
    cdef Py_ssize_t n = PySequence_Fast_GET_SIZE(seq)
    cdef Py_ssize_t i, k, pos = 0
    cdef PyObject *item
    cdef object a, l
    cdef uint32_t v, w
    cdef int nb
    cdef uint64_t hi, lo
    cdef unsigned char *q
    e.n = 0
    e.size = <uint8_t *>PyMem_Malloc(n + 1)
    e.buf = <unsigned char *>PyMem_Malloc((n + 1) * (5 if bits == 32 else 17))
    if e.size == NULL or e.buf == NULL:
        raise MemoryError()
    i = 0
    while i < n:
        if bits == 32:
            # the common case first: a run of plain ints (host routes), encoded by one C loop
            k = fastpath_hosts32(PySequence_Fast_ITEMS(seq) + i, n - i, e.buf + pos, e.size + i)
            pos += 5 * k
            i += k
            if i == n:
                break
        item = PySequence_Fast_GET_ITEM(seq, i)  # borrowed: no reference counting on the fast paths
        q = e.buf + pos
        i += 1
        if bits == 32:
            # fast path: a tuple of two plain ints; anything else takes the twin's rules
            if PyTuple_CheckExact(<object>item) and PyTuple_GET_SIZE(<object>item) == 2:
                if (fastpath_u32(PyTuple_GET_ITEM(<object>item, 0), &v)
                        and fastpath_u32(PyTuple_GET_ITEM(<object>item, 1), &w) and w <= 32
                        and (w == 32 or (v & ((1u << (32 - w)) - 1)) == 0)):
                    nb = (w + 7) >> 3
                    q[0] = <unsigned char>w
                    for k in range(nb):
                        q[1 + k] = <unsigned char>(v >> (24 - 8 * k))
                    e.size[i - 1] = <uint8_t>(1 + nb)
                    pos += 1 + nb
                    continue
            a, l = _prefix_slow(<object>item, 32)
            v = <uint32_t>PyLong_AsUnsignedLongLong(a)
            w = <uint32_t>PyLong_AsLong(l)
            nb = (w + 7) >> 3
            q[0] = <unsigned char>w
            for k in range(nb):
                q[1 + k] = <unsigned char>(v >> (24 - 8 * k))
        else:
            a, l = _prefix_slow(<object>item, 128)
            hi = PyLong_AsUnsignedLongLong(a >> 64)
            lo = PyLong_AsUnsignedLongLong(a & 0xFFFFFFFFFFFFFFFF)
            w = <uint32_t>PyLong_AsLong(l)
            nb = (w + 7) >> 3
            q[0] = <unsigned char>w
            for k in range(nb):
                q[1 + k] = <unsigned char>((hi >> (56 - 8 * k)) if k < 8 else (lo >> (120 - 8 * k)))
        e.size[i - 1] = <uint8_t>(1 + nb)
        pos += 1 + nb
    e.n = n
    return 0


cdef void _free(Enc *e) noexcept:
    PyMem_Free(e.buf)
    PyMem_Free(e.size)


cdef list _pack(Enc *e, Py_ssize_t room, int mode, bytes pre, bytes mid, bytes post):
    """Split greedily (runs of at most ``room`` prefix bytes, in order) and build one message per run; each run
    is one ``memcpy`` from the encoded stream.

    Layouts after the 19-byte header:
      MODE_NLRI4:      00 00 | attr_len | pre (the attributes) | prefixes
      MODE_WITHDRAW4:  withdrawn_len | prefixes | 00 00
      MODE_MP_REACH:   00 00 | attr_len | pre | MP_REACH header | mid (afi safi nh_len nh 00) | prefixes | post
      MODE_MP_UNREACH: 00 00 | attr_len | MP_UNREACH header | mid (afi safi) | prefixes
    """
    cdef list out = []
    cdef Py_ssize_t i = 0, j, used, total, attr_len = 0, mp_value
    cdef Py_ssize_t n = e.n
    cdef const unsigned char *src = e.buf
    cdef bytes msg
    cdef unsigned char *p
    cdef const char *pre_p = PyBytes_AS_STRING(pre)
    cdef const char *mid_p = PyBytes_AS_STRING(mid)
    cdef const char *post_p = PyBytes_AS_STRING(post)
    cdef Py_ssize_t npre = len(pre), nmid = len(mid), npost = len(post)
    cdef int mp_hdr = 3
    cdef uint8_t mp_type = A_MP_REACH if mode == MODE_MP_REACH else A_MP_UNREACH
    while i < n:
        used = e.size[i]
        j = i + 1
        while j < n and used + e.size[j] <= room:
            used += e.size[j]
            j += 1
        if mode == MODE_NLRI4:
            total = HDR + 4 + npre + used
        elif mode == MODE_WITHDRAW4:
            total = HDR + 4 + used
        else:
            mp_value = nmid + used
            mp_hdr = 4 if mp_value > 255 else 3
            attr_len = npre + mp_hdr + mp_value + npost
            total = HDR + 4 + attr_len
        msg = PyBytes_FromStringAndSize(NULL, total)
        p = <unsigned char *>PyBytes_AS_STRING(msg)
        _header(p, total, T_UPDATE)
        p += HDR
        if mode == MODE_WITHDRAW4:
            put_u16(p, <uint16_t>used)
            memcpy(p + 2, src, used)
            p[2 + used] = 0
            p[3 + used] = 0
        elif mode == MODE_NLRI4:
            p[0] = 0
            p[1] = 0
            put_u16(p + 2, <uint16_t>npre)
            memcpy(p + 4, pre_p, npre)
            memcpy(p + 4 + npre, src, used)
        else:
            p[0] = 0
            p[1] = 0
            put_u16(p + 2, <uint16_t>attr_len)
            memcpy(p + 4, pre_p, npre)
            p += 4 + npre
            p[0] = OPT_NONTRANS | (0x10 if mp_hdr == 4 else 0)
            p[1] = mp_type
            if mp_hdr == 4:
                put_u16(p + 2, <uint16_t>mp_value)
            else:
                p[2] = <uint8_t>mp_value
            p += mp_hdr
            memcpy(p, mid_p, nmid)
            memcpy(p + nmid, src, used)
            memcpy(p + nmid + used, post_p, npost)
        src += used
        out.append(msg)
        i = j
    return out


cdef int _family(object afi) except -1:
    if afi == 1:
        return 32
    if afi == 2:
        return 128
    raise ValueError(f"afi must be 1 (IPv4) or 2 (IPv6), got {afi!r}")


cdef bytes _mp_next_hop(object next_hop, object afi):
    cdef int bits = _family(afi)
    hops = (next_hop,) if isinstance(next_hop, int) else tuple(next_hop or ())
    if not 1 <= len(hops) <= (2 if afi == 2 else 1):
        raise ValueError(f"next_hop for afi {afi} must be one address{' or (global, link-local)' if afi == 2 else ''}")
    return b"".join([_u(h, bits, "next_hop").to_bytes(bits // 8, "big") for h in hops])


def pack_updates(prefixes, attrs, *, afi=1, next_hop=None, as4=True, max_len=4096):
    """UPDATEs announcing ``prefixes`` (in input order) with the shared ``attrs``, each at most ``max_len`` bytes.

    IPv4 (``afi=1``): NLRI field, NEXT_HOP from ``attrs.next_hop`` (required). IPv6 (``afi=2``): MP_REACH_NLRI
    (RFC 4760 §3) with ``next_hop`` = global address or (global, link-local) (RFC 2545 §3). No prefixes → no
    messages.
    """
    cdef int ml = _check_max_len(max_len)
    cdef int bits = _family(afi)
    cdef Py_ssize_t room
    cdef Enc e
    e.buf = NULL
    e.size = NULL
    try:
        _collect(prefixes, bits, &e)
        if attrs is None or getattr(attrs, "origin", None) is None or getattr(attrs, "as_path", None) is None:
            raise ValueError("an announcement needs ORIGIN and AS_PATH (RFC 4271 §5.1.1, §5.1.2)")
        items = _attr_list(attrs, as4)
        if bits == 32:
            if attrs.next_hop is None:
                raise ValueError("IPv4 NLRI needs attrs.next_hop (RFC 4271 §5.1.3)")
            block = b"".join([v for _, v in items])
            room = ml - HDR - 4 - len(block)
            if room < 5:
                raise ValueError("attributes leave no room for a prefix")
            return _pack(&e, room, MODE_NLRI4, block, b"", b"")
        nh = _mp_next_hop(next_hop, afi)
        low = b"".join([v for k, v in items if k < 14])
        high = b"".join([v for k, v in items if k > 14])
        mp_fixed = struct.pack("!HBB", afi, 1, len(nh)) + nh + b"\x00"
        room = ml - HDR - 4 - len(low) - len(high) - 4 - len(mp_fixed)
        if room < 17:
            raise ValueError("attributes leave no room for a prefix")
        return _pack(&e, room, MODE_MP_REACH, low, mp_fixed, high)
    finally:
        _free(&e)


def pack_withdrawals(prefixes, *, afi=1, max_len=4096):
    """UPDATEs withdrawing ``prefixes`` (in input order), packed like :func:`pack_updates`: IPv4 in the Withdrawn
    Routes field (RFC 4271 §4.3), IPv6 in MP_UNREACH_NLRI (RFC 4760 §4). No prefixes → no messages."""
    cdef int ml = _check_max_len(max_len)
    cdef int bits = _family(afi)
    cdef Enc e
    e.buf = NULL
    e.size = NULL
    try:
        _collect(prefixes, bits, &e)
        if bits == 32:
            return _pack(&e, ml - HDR - 4, MODE_WITHDRAW4, b"", b"", b"")
        return _pack(&e, ml - HDR - 4 - 4 - 3, MODE_MP_UNREACH, b"", struct.pack("!HB", afi, 1), b"")
    finally:
        _free(&e)


def build_end_of_rib(afi=1, safi=1):
    """End-of-RIB marker (RFC 4724 §2): an empty UPDATE for IPv4 unicast, else an UPDATE whose only attribute is
    an empty MP_UNREACH_NLRI for (afi, safi)."""
    if afi == 1 and safi == 1:
        out = PyBytes_FromStringAndSize(NULL, 23)
        _header(<unsigned char *>PyBytes_AS_STRING(out), 23, T_UPDATE)
        memset(PyBytes_AS_STRING(out) + 19, 0, 4)
        return out
    _u(afi, 16, "afi")
    _u(safi, 8, "safi")
    out = PyBytes_FromStringAndSize(NULL, 29)
    cdef unsigned char *p = <unsigned char *>PyBytes_AS_STRING(out)
    _header(p, 29, T_UPDATE)
    p[19] = 0
    p[20] = 0
    put_u16(p + 21, 6)
    p[23] = OPT_NONTRANS
    p[24] = A_MP_UNREACH
    p[25] = 3
    put_u16(p + 26, <uint16_t>afi)
    p[28] = <uint8_t>safi
    return out
