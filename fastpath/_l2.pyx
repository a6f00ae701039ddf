# cython: language_level=3
"""Layer-2 frame builders, compiled. Same API and bytes as ``fastpath._l2_py`` (the spec; read it first).

Each builder computes the exact size, allocates one ``bytes`` (or writes into the caller's buffer) and fills it
through a ``char*``; arguments are checked once at the entry point, loops touch no Python objects.
"""

from cpython.buffer cimport PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject
from cpython.sequence cimport PySequence_Fast, PySequence_Fast_GET_ITEM, PySequence_Fast_GET_SIZE
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memset

from fastpath._pack cimport fastpath_u32, fastpath_u128, fold16, put_u16, put_u32, sum16

from fastpath import constants as _c

cdef Py_ssize_t ARP_LEN = _c.ARP_FRAME_LEN
cdef Py_ssize_t NA_LEN = _c.NDP_NA_FRAME_LEN
cdef uint16_t ETH_ARP = _c.EtherType.ARP
cdef uint16_t ETH_IPV4 = _c.EtherType.IPV4
cdef uint16_t ETH_IPV6 = _c.EtherType.IPV6
cdef uint8_t ICMP6_NA = _c.Icmp6Type.NEIGHBOR_ADVERTISEMENT
cdef uint8_t OPT_TLLA = _c.NdpOption.TARGET_LL_ADDRESS
cdef uint8_t FLAG_S = _c.NA_FLAG_SOLICITED
cdef uint8_t FLAG_O = _c.NA_FLAG_OVERRIDE
cdef uint8_t HOP_LIMIT = _c.NDP_HOP_LIMIT
cdef bytes ALL_NODES_MAC = _c.ETH_ALL_NODES
cdef bytes ALL_NODES_IP = _c.IPV6_ALL_NODES.to_bytes(16, "big")


# --- argument checks (the only place that raises) -----------------------------------------------------------------

cdef bytes _mac(object mac, str name="mac"):
    if not isinstance(mac, (bytes, bytearray)) or len(mac) != 6:
        raise ValueError(f"{name} must be 6 bytes, got {mac!r}")
    return bytes(mac)


cdef uint32_t _ip4(object ip, str name="ip4") except? 0xFFFFFFFF:
    if not isinstance(ip, int) or ip < 0 or ip > 0xFFFFFFFF:
        raise ValueError(f"{name} must be an int in 0..2**32-1, got {ip!r}")
    return ip  # in range: Cython's checked conversion cannot fail


cdef bytes _ip6(object ip, str name="ip6"):
    if not isinstance(ip, int) or ip < 0 or ip >= (1 << 128):
        raise ValueError(f"{name} must be an int in 0..2**128-1, got {ip!r}")
    return ip.to_bytes(16, "big")


cdef int _op(object op) except -1:
    if op != 1 and op != 2:
        raise ValueError(f"ARP op must be 1 (request) or 2 (reply), got {op!r}")
    return <int>op


cpdef object link_local(object mac):
    """The IPv6 link-local address fe80::/64 + modified EUI-64 of ``mac`` (RFC 4291 §2.5.1, appendix A)."""
    cdef bytes m = _mac(mac)
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(m)
    cdef uint64_t iid = ((<uint64_t>(p[0] ^ 0x02) << 56) | (<uint64_t>p[1] << 48) | (<uint64_t>p[2] << 40)
                         | (<uint64_t>0xFF << 32) | (<uint64_t>0xFE << 24) | (<uint64_t>p[3] << 16)
                         | (<uint64_t>p[4] << 8) | <uint64_t>p[5])
    return (0xFE80 << 112) | iid


# --- ARP -----------------------------------------------------------------------------------------------------------
# Layout (RFC 826), 42 bytes: dst MAC 0, src MAC 6, EtherType 12, htype 14, ptype 16, hlen 18, plen 19, op 20,
# sender MAC 22, sender IP 28, target MAC 32, target IP 38.

cdef inline void _arp(unsigned char *p, const unsigned char *eth_dst, const unsigned char *eth_src, uint16_t op,
                      const unsigned char *sha, uint32_t spa, const unsigned char *tha, uint32_t tpa) noexcept nogil:
    memcpy(p, eth_dst, 6)
    memcpy(p + 6, eth_src, 6)
    put_u16(p + 12, ETH_ARP)
    put_u16(p + 14, 1)
    put_u16(p + 16, ETH_IPV4)
    p[18] = 6
    p[19] = 4
    put_u16(p + 20, op)
    memcpy(p + 22, sha, 6)
    put_u32(p + 28, spa)
    memcpy(p + 32, tha, 6)
    put_u32(p + 38, tpa)


cdef const unsigned char *BCAST = b"\xff\xff\xff\xff\xff\xff"


def build_arp_announce(op, mac, ip4):
    """A gratuitous ARP (RFC 5227 §3, as MetalLB sends it): broadcast, sender = (mac, ip4), target =
    (ff:ff:ff:ff:ff:ff, ip4); ``op`` 1 (request) or 2 (reply)."""
    cdef bytes m = _mac(mac)
    cdef uint32_t ip = _ip4(ip4)
    cdef uint16_t o = <uint16_t>_op(op)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, ARP_LEN)
    cdef const unsigned char *mp = <const unsigned char *>PyBytes_AS_STRING(m)
    _arp(<unsigned char *>PyBytes_AS_STRING(out), BCAST, mp, o, mp, ip, BCAST, ip)
    return out


def build_arp_reply(mac, ip4, dst_mac, dst_ip4):
    """The unicast reply to an ARP request for ``ip4`` from (``dst_mac``, ``dst_ip4``) (metallb-behaviour §5.4)."""
    cdef bytes m = _mac(mac)
    cdef bytes d = _mac(dst_mac, "dst_mac")
    cdef uint32_t ip = _ip4(ip4)
    cdef uint32_t dip = _ip4(dst_ip4, "dst_ip4")
    cdef bytes out = PyBytes_FromStringAndSize(NULL, ARP_LEN)
    cdef const unsigned char *mp = <const unsigned char *>PyBytes_AS_STRING(m)
    cdef const unsigned char *dp = <const unsigned char *>PyBytes_AS_STRING(d)
    _arp(<unsigned char *>PyBytes_AS_STRING(out), dp, mp, 2, mp, ip, dp, dip)
    return out


def write_arp_burst(out, mac, ips, Py_ssize_t offset=0):
    """Write one gratuitous burst per address — a request frame then a reply frame, 42 bytes each, back to back —
    into ``out`` from ``offset``. Frame ``k`` starts at ``offset + 42 * k``. Returns the number of frames.

    Raises ``ValueError`` (writing nothing) when ``out`` is too small or an argument is invalid.
    """
    cdef bytes m = _mac(mac)
    cdef object seq = PySequence_Fast(ips, "ips must be a sequence of ints")
    cdef Py_ssize_t n = PySequence_Fast_GET_SIZE(seq)
    cdef Py_ssize_t i
    cdef uint32_t *addrs = <uint32_t *>PyMem_Malloc((n if n > 0 else 1) * sizeof(uint32_t))
    cdef Py_buffer view
    cdef unsigned char tpl[84]
    cdef unsigned char *p
    cdef const unsigned char *mp = <const unsigned char *>PyBytes_AS_STRING(m)
    cdef PyObject *item
    if addrs == NULL:
        raise MemoryError()
    try:
        for i in range(n):
            item = PySequence_Fast_GET_ITEM(seq, i)  # borrowed: no reference counting in the loop
            if not fastpath_u32(item, &addrs[i]):  # fast path: a plain int; else the checked conversion
                addrs[i] = _ip4(<object>item)
        PyObject_GetBuffer(out, &view, PyBUF_WRITABLE)
        try:
            if offset < 0 or offset + 2 * ARP_LEN * n > view.len:
                raise ValueError(f"buffer of {view.len} bytes too small for {2 * n} ARP frames at {offset}")
            # Two templates (request, reply) with everything but the addresses; then copy and patch per address.
            _arp(tpl, BCAST, mp, 1, mp, 0, BCAST, 0)
            _arp(tpl + 42, BCAST, mp, 2, mp, 0, BCAST, 0)
            p = <unsigned char *>view.buf + offset
            with nogil:
                for i in range(n):
                    memcpy(p, tpl, 84)
                    put_u32(p + 28, addrs[i])
                    put_u32(p + 38, addrs[i])
                    put_u32(p + 70, addrs[i])
                    put_u32(p + 80, addrs[i])
                    p += 84
        finally:
            PyBuffer_Release(&view)
    finally:
        PyMem_Free(addrs)
    return 2 * n


# --- NDP -----------------------------------------------------------------------------------------------------------
# Layout, 86 bytes: Ethernet 0..13; IPv6 14 (vtf 14, payload length 18, next header 20, hop limit 21, src 22,
# dst 38); ICMPv6 NA 54 (type 54, code 55, checksum 56, flags 58, target 62); option TLLA 78 (type, len 1, MAC 80).

cdef inline void _na(unsigned char *p, const unsigned char *eth_dst, const unsigned char *mac,
                     const unsigned char *src, const unsigned char *dst, uint8_t flags,
                     const unsigned char *target) noexcept nogil:
    cdef uint32_t s
    memcpy(p, eth_dst, 6)
    memcpy(p + 6, mac, 6)
    put_u16(p + 12, ETH_IPV6)
    put_u32(p + 14, 0x60000000)
    put_u16(p + 18, 32)
    p[20] = 58
    p[21] = HOP_LIMIT
    memcpy(p + 22, src, 16)
    memcpy(p + 38, dst, 16)
    p[54] = ICMP6_NA
    p[55] = 0
    p[56] = 0
    p[57] = 0
    p[58] = flags
    p[59] = 0
    p[60] = 0
    p[61] = 0
    memcpy(p + 62, target, 16)
    p[78] = OPT_TLLA
    p[79] = 1
    memcpy(p + 80, mac, 6)
    # RFC 8200 §8.1 pseudo-header: src + dst (p+22..53, contiguous), length 32, next header 58; then the message.
    s = sum16(p + 22, 32) + 32 + 58 + sum16(p + 54, 32)
    put_u16(p + 56, fold16(s))


def build_ndp_advert(mac, ip6, src=None):
    """An unsolicited Neighbor Advertisement for ``ip6`` (RFC 4861 §7.2.6): to ff02::1 (33:33:00:00:00:01),
    S=0 O=1, target link-layer option = ``mac``, from ``src`` or the MAC's link-local address."""
    cdef bytes m = _mac(mac)
    cdef bytes s = _ip6(link_local(m) if src is None else src, "src")
    cdef bytes t = _ip6(ip6)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, NA_LEN)
    _na(<unsigned char *>PyBytes_AS_STRING(out), <const unsigned char *>PyBytes_AS_STRING(ALL_NODES_MAC),
        <const unsigned char *>PyBytes_AS_STRING(m), <const unsigned char *>PyBytes_AS_STRING(s),
        <const unsigned char *>PyBytes_AS_STRING(ALL_NODES_IP), FLAG_O, <const unsigned char *>PyBytes_AS_STRING(t))
    return out


def build_ndp_reply(mac, ip6, dst_mac, dst_ip6, src=None):
    """The solicited Neighbor Advertisement answering a solicitation for ``ip6`` (metallb-behaviour §5.5):
    unicast to (``dst_mac``, ``dst_ip6``), S=1 O=0, target link-layer option = ``mac``."""
    cdef bytes m = _mac(mac)
    cdef bytes s = _ip6(link_local(m) if src is None else src, "src")
    cdef bytes dm = _mac(dst_mac, "dst_mac")
    cdef bytes d = _ip6(dst_ip6, "dst_ip6")
    cdef bytes t = _ip6(ip6)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, NA_LEN)
    _na(<unsigned char *>PyBytes_AS_STRING(out), <const unsigned char *>PyBytes_AS_STRING(dm),
        <const unsigned char *>PyBytes_AS_STRING(m), <const unsigned char *>PyBytes_AS_STRING(s),
        <const unsigned char *>PyBytes_AS_STRING(d), FLAG_S, <const unsigned char *>PyBytes_AS_STRING(t))
    return out


def write_ndp_burst(out, mac, ips, Py_ssize_t offset=0, src=None):
    """Write one unsolicited NA per address (86 bytes each) into ``out`` from ``offset``; returns the count."""
    cdef bytes m = _mac(mac)
    cdef bytes s = _ip6(link_local(m) if src is None else src, "src")
    cdef object seq = PySequence_Fast(ips, "ips must be a sequence of ints")
    cdef Py_ssize_t n = PySequence_Fast_GET_SIZE(seq)
    cdef Py_ssize_t i
    cdef unsigned char *targets = <unsigned char *>PyMem_Malloc((n if n > 0 else 1) * 16)
    cdef PyObject *item
    cdef Py_buffer view
    cdef unsigned char tpl[86]
    cdef unsigned char *p
    cdef uint32_t base
    if targets == NULL:
        raise MemoryError()
    try:
        for i in range(n):
            item = PySequence_Fast_GET_ITEM(seq, i)
            if not fastpath_u128(item, targets + 16 * i):
                memcpy(targets + 16 * i, PyBytes_AS_STRING(_ip6(<object>item)), 16)
        PyObject_GetBuffer(out, &view, PyBUF_WRITABLE)
        try:
            if offset < 0 or offset + NA_LEN * n > view.len:
                raise ValueError(f"buffer of {view.len} bytes too small for {n} NA frames at {offset}")
            # Template with a zero target; its checksum sum is computed once, each frame adds its target's words.
            memset(tpl, 0, 86)
            _na(tpl, <const unsigned char *>PyBytes_AS_STRING(ALL_NODES_MAC), <const unsigned char *>PyBytes_AS_STRING(m),
                <const unsigned char *>PyBytes_AS_STRING(s), <const unsigned char *>PyBytes_AS_STRING(ALL_NODES_IP),
                FLAG_O, tpl + 62)
            tpl[56] = 0
            tpl[57] = 0
            base = sum16(tpl + 22, 32) + 32 + 58 + sum16(tpl + 54, 32)
            p = <unsigned char *>view.buf + offset
            with nogil:
                for i in range(n):
                    memcpy(p, tpl, 86)
                    memcpy(p + 62, targets + 16 * i, 16)
                    put_u16(p + 56, fold16(base + sum16(p + 62, 16)))
                    p += NA_LEN
        finally:
            PyBuffer_Release(&view)
    finally:
        PyMem_Free(targets)
    return n


def checksum(data):
    """The Internet checksum (RFC 1071): ones'-complement of the ones'-complement sum of 16-bit words."""
    cdef bytes b = bytes(data)
    return fold16(sum16(<const unsigned char *>PyBytes_AS_STRING(b), len(b)))


# --- parsers for the responder (same checks, same order and same results as the twin) -------------------------------

from fastpath.constants import DropReason as _Drop
from fastpath.model import ArpRequest as _ArpRequest, NeighborSolicitation as _NeighborSolicitation

cdef object D_TRUNCATED = _Drop.TRUNCATED
cdef object D_NOT_ARP = _Drop.NOT_ARP
cdef object D_BAD_ARP_HEADER = _Drop.BAD_ARP_HEADER
cdef object D_NOT_ARP_REQUEST = _Drop.NOT_ARP_REQUEST
cdef object D_NOT_FOR_US = _Drop.NOT_FOR_US
cdef object D_NOT_IPV6 = _Drop.NOT_IPV6
cdef object D_NOT_ICMPV6 = _Drop.NOT_ICMPV6
cdef object D_NOT_NS = _Drop.NOT_NEIGHBOR_SOLICITATION
cdef object D_BAD_HOP_LIMIT = _Drop.BAD_HOP_LIMIT
cdef object D_BAD_ICMP_CODE = _Drop.BAD_ICMP_CODE
cdef object D_BAD_CHECKSUM = _Drop.BAD_CHECKSUM
cdef object D_MULTICAST_TARGET = _Drop.MULTICAST_TARGET
cdef object D_BAD_OPTION = _Drop.BAD_OPTION
cdef object D_NO_SLLA = _Drop.NO_SOURCE_LL_ADDRESS


cdef inline uint32_t _get_u32(const unsigned char *p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


def parse_arp_request(frame, iface_mac):
    """Read an incoming frame as an ARP request for the responder (metallb-behaviour §5.4), or say why not."""
    cdef bytes m = _mac(iface_mac, "iface_mac")
    cdef const unsigned char *mp = <const unsigned char *>PyBytes_AS_STRING(m)
    cdef Py_buffer view
    cdef const unsigned char *p
    cdef Py_ssize_t n
    PyObject_GetBuffer(frame, &view, 0)
    try:
        p = <const unsigned char *>view.buf
        n = view.len
        if n < 14:
            return D_TRUNCATED
        if p[12] != 0x08 or p[13] != 0x06:
            return D_NOT_ARP
        if n < ARP_LEN:
            return D_TRUNCATED
        if p[14] != 0 or p[15] != 1 or p[16] != 0x08 or p[17] != 0 or p[18] != 6 or p[19] != 4:
            return D_BAD_ARP_HEADER
        if p[20] != 0 or p[21] != 1:
            return D_NOT_ARP_REQUEST
        if memcmp(p, BCAST, 6) != 0 and memcmp(p, mp, 6) != 0:
            return D_NOT_FOR_US
        return _ArpRequest(eth_src=PyBytes_FromStringAndSize(<const char *>p + 6, 6),
                           sender_mac=PyBytes_FromStringAndSize(<const char *>p + 22, 6),
                           sender_ip=_get_u32(p + 28), target_ip=_get_u32(p + 38))
    finally:
        PyBuffer_Release(&view)


def parse_neighbor_solicitation(frame, iface_mac):
    """Read an incoming frame as a Neighbor Solicitation for the responder (metallb-behaviour §5.5), or say why not."""
    cdef bytes m = _mac(iface_mac, "iface_mac")
    cdef const unsigned char *mp = <const unsigned char *>PyBytes_AS_STRING(m)
    cdef Py_buffer view
    cdef const unsigned char *p
    cdef const unsigned char *icmp
    cdef Py_ssize_t n, plen, pos, units, slla = -1
    cdef uint32_t s
    PyObject_GetBuffer(frame, &view, 0)
    try:
        p = <const unsigned char *>view.buf
        n = view.len
        if n < 14:
            return D_TRUNCATED
        if p[12] != 0x86 or p[13] != 0xDD:
            return D_NOT_IPV6
        if n < 14 + 40 + 24:
            return D_TRUNCATED
        if p[14] >> 4 != 6:
            return D_NOT_IPV6
        plen = (<Py_ssize_t>p[18] << 8) | p[19]
        if p[20] != 58:
            return D_NOT_ICMPV6
        if plen < 24 or 54 + plen > n:
            return D_TRUNCATED
        icmp = p + 54
        if icmp[0] != 135:
            return D_NOT_NS
        if p[21] != HOP_LIMIT:
            return D_BAD_HOP_LIMIT
        if icmp[1] != 0:
            return D_BAD_ICMP_CODE
        if memcmp(p, mp, 6) != 0 and not (p[0] == 0x33 and p[1] == 0x33):
            return D_NOT_FOR_US
        # RFC 8200 §8.1 pseudo-header (addresses, upper-layer length, next header) + the ICMPv6 message
        s = sum16(p + 22, 32) + <uint32_t>plen + 58 + sum16(icmp, plen)
        if fold16(s) != 0:
            return D_BAD_CHECKSUM
        if icmp[8] == 0xFF:
            return D_MULTICAST_TARGET
        pos = 24
        while pos < plen:
            if pos + 2 > plen:
                return D_BAD_OPTION
            units = icmp[pos + 1]
            if units == 0 or pos + 8 * units > plen:
                return D_BAD_OPTION
            if icmp[pos] == 1 and units == 1 and slla < 0:
                slla = pos + 2
            pos += 8 * units
        if slla < 0:
            return D_NO_SLLA
        return _NeighborSolicitation(
            eth_src=PyBytes_FromStringAndSize(<const char *>p + 6, 6),
            src_ip=int.from_bytes(PyBytes_FromStringAndSize(<const char *>p + 22, 16), "big"),
            dst_ip=int.from_bytes(PyBytes_FromStringAndSize(<const char *>p + 38, 16), "big"),
            target=int.from_bytes(PyBytes_FromStringAndSize(<const char *>icmp + 8, 16), "big"),
            source_lla=PyBytes_FromStringAndSize(<const char *>icmp + slla, 6),
        )
    finally:
        PyBuffer_Release(&view)


# --- conflict probes (see _l2_py) ---------------------------------------------------------------------------------

cdef const unsigned char *ZERO6 = b"\x00\x00\x00\x00\x00\x00"
cdef uint8_t ICMP6_NS = _c.Icmp6Type.NEIGHBOR_SOLICITATION


def build_arp_probe(mac, ip4):
    """An ARP probe (RFC 5227 §2.1.1) for ``ip4``: broadcast request, sender = (``mac``, 0.0.0.0), target MAC all
    zero, target IP = ``ip4``; 42 bytes."""
    cdef bytes m = _mac(mac)
    cdef uint32_t ip = _ip4(ip4)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, ARP_LEN)
    cdef const unsigned char *mp = <const unsigned char *>PyBytes_AS_STRING(m)
    _arp(<unsigned char *>PyBytes_AS_STRING(out), BCAST, mp, 1, mp, 0, ZERO6, ip)
    return out


def solicited_node(ip6):
    """The solicited-node multicast address ff02::1:ff00:0/104 + the low 24 bits of ``ip6`` (RFC 4291 §2.7.1)."""
    cdef bytes t = _ip6(ip6)
    return (0xFF02 << 112) | (1 << 32) | (0xFF << 24) | int.from_bytes(t[13:], "big")


def build_ns_probe(mac, ip6):
    """A duplicate-address-detection Neighbor Solicitation (RFC 4862 §5.4.2) for ``ip6``: from ::, to the target's
    solicited-node group, hop limit 255, no options; 78 bytes."""
    cdef bytes m = _mac(mac)
    cdef bytes target = _ip6(ip6)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 78)
    cdef unsigned char *p = <unsigned char *>PyBytes_AS_STRING(out)
    cdef const unsigned char *t = <const unsigned char *>PyBytes_AS_STRING(target)
    cdef uint32_t s
    p[0] = 0x33
    p[1] = 0x33
    p[2] = 0xFF
    memcpy(p + 3, t + 13, 3)
    memcpy(p + 6, PyBytes_AS_STRING(m), 6)
    put_u16(p + 12, ETH_IPV6)
    put_u32(p + 14, 0x60000000)
    put_u16(p + 18, 24)
    p[20] = 58
    p[21] = HOP_LIMIT
    memset(p + 22, 0, 16)
    # destination ff02::1:ffXX:XXXX
    memset(p + 38, 0, 16)
    p[38] = 0xFF
    p[39] = 0x02
    p[49] = 0x01
    p[50] = 0xFF
    memcpy(p + 51, t + 13, 3)
    p[54] = ICMP6_NS
    p[55] = 0
    p[56] = 0
    p[57] = 0
    memset(p + 58, 0, 4)
    memcpy(p + 62, t, 16)
    s = sum16(p + 22, 32) + 24 + 58 + sum16(p + 54, 24)
    put_u16(p + 56, fold16(s))
    return out
