# cython: language_level=3
"""BFD control packets, compiled. Same API, bytes and errors as ``fastpath._bfd_py`` (the spec; read it first).

The builder checks its arguments once and writes the 24 bytes through a ``char*``; the parser reads them the same
way and raises only ``BfdError``.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_AsUnsignedLongLong
from libc.stdint cimport uint32_t
from libc.string cimport memcpy

from fastpath._pack cimport put_u32

from fastpath._bfd_common import BfdError, Control

cdef object _new_control = tuple.__new__  # builds the named tuple without its Python-level __new__
cdef bytes _EMPTY = b""

cdef enum:
    HDR = 24
    F_P = 0x20
    F_F = 0x10
    F_C = 0x08
    F_A = 0x04
    F_D = 0x02
    F_M = 0x01


cdef unsigned long long _u(object value, int bits, str name) except? 0xFFFFFFFFFFFFFFFF:
    cdef unsigned long long x
    if type(value) is int:  # the common case, checked in C (bool is not exactly int)
        try:
            x = PyLong_AsUnsignedLongLong(value)  # OverflowError when negative or too wide
        except OverflowError:
            x = <unsigned long long>-1
        if (x >> bits) == 0:
            return x
        raise ValueError(f"{name} must be an int in 0..{(1 << bits) - 1}, got {value!r}")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or (value >> bits):
        raise ValueError(f"{name} must be an int in 0..{(1 << bits) - 1}, got {value!r}")
    return <unsigned long long>value


cdef inline uint32_t _get32(const unsigned char *p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | <uint32_t>p[3]


cpdef bytes build_control(object state, object diag=0, object detect_mult=3, object my_disc=1, object your_disc=0,
                          object min_tx=1000000, object min_rx=1000000, object min_echo_rx=0, object poll=False,
                          object final=False, object cpi=False, object auth_present=False, object demand=False,
                          object auth=b""):
    """One control packet. Intervals in µs; ``auth`` is a raw authentication section appended after the 24 bytes
    (its presence is signalled by ``auth_present``, the A bit, independently — the caller decides). Arguments out of
    their field's range raise ``ValueError``."""
    cdef unsigned int st = <unsigned int>_u(state, 2, "state")
    cdef unsigned int dg = <unsigned int>_u(diag, 5, "diag")
    cdef unsigned int mult = <unsigned int>_u(detect_mult, 8, "detect_mult")
    cdef uint32_t md = <uint32_t>_u(my_disc, 32, "my_disc")
    cdef uint32_t yd = <uint32_t>_u(your_disc, 32, "your_disc")
    cdef uint32_t tx = <uint32_t>_u(min_tx, 32, "min_tx")
    cdef uint32_t rx = <uint32_t>_u(min_rx, 32, "min_rx")
    cdef uint32_t echo = <uint32_t>_u(min_echo_rx, 32, "min_echo_rx")
    cdef bytes a
    if type(auth) is bytes and PyBytes_GET_SIZE(auth) == 0:
        a = _EMPTY
    else:
        if not isinstance(auth, (bytes, bytearray)) or len(auth) > 255 - HDR:
            raise ValueError(f"auth must be at most {255 - HDR} bytes, got {auth!r}")
        a = bytes(auth)
    cdef Py_ssize_t alen = PyBytes_GET_SIZE(a)
    cdef unsigned int flags = ((F_P if poll else 0) | (F_F if final else 0) | (F_C if cpi else 0)
                               | (F_A if auth_present else 0) | (F_D if demand else 0))
    cdef bytes out = PyBytes_FromStringAndSize(NULL, HDR + alen)
    cdef unsigned char *p = <unsigned char *>PyBytes_AS_STRING(out)
    p[0] = <unsigned char>((1 << 5) | dg)
    p[1] = <unsigned char>((st << 6) | flags)
    p[2] = <unsigned char>mult
    p[3] = <unsigned char>(HDR + alen)
    put_u32(p + 4, md)
    put_u32(p + 8, yd)
    put_u32(p + 12, tx)
    put_u32(p + 16, rx)
    put_u32(p + 20, echo)
    if alen:
        memcpy(p + HDR, PyBytes_AS_STRING(a), alen)
    return out


cpdef object parse_control(object data):
    """The :class:`Control` in ``data`` (bytes-like), or :class:`BfdError` naming why it must be discarded."""
    cdef bytes raw
    if type(data) is bytes:
        raw = <bytes>data
    else:
        try:
            raw = bytes(memoryview(data).cast("B"))
        except (TypeError, ValueError):
            raise BfdError(f"expected bytes, got {type(data).__name__}") from None
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw)
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(raw)
    if n < HDR:
        raise BfdError(f"short packet: {n} bytes, the header is {HDR}")
    cdef unsigned int b0 = p[0], b1 = p[1], mult = p[2], length = p[3]
    if b0 >> 5 != 1:
        raise BfdError(f"version {b0 >> 5}, expected 1")
    cdef bint auth_bit = (b1 & F_A) != 0
    if length < (HDR + 2 if auth_bit else HDR):
        raise BfdError(f"length field {length} below the minimum")
    if length > n:
        raise BfdError(f"length field {length} exceeds the {n} bytes received")
    if mult == 0:
        raise BfdError("detect multiplier 0")
    if b1 & F_M:
        raise BfdError("multipoint bit set")
    cdef uint32_t my_disc = _get32(p + 4), your_disc = _get32(p + 8)
    if my_disc == 0:
        raise BfdError("my discriminator 0")
    cdef unsigned int state = b1 >> 6
    if your_disc == 0 and state > 1:
        raise BfdError("your discriminator 0 outside Down/AdminDown")
    cdef bytes auth = raw[HDR:length] if length > HDR else _EMPTY
    cdef Py_ssize_t alen = length - HDR
    if auth_bit and not (2 <= p[HDR + 1] <= alen):
        raise BfdError(f"authentication length {p[HDR + 1]} does not fit the {alen}-byte section")
    return _new_control(Control, (state, b0 & 0x1F, mult, my_disc, your_disc, _get32(p + 12), _get32(p + 16),
                                  _get32(p + 20), (b1 & F_P) != 0, (b1 & F_F) != 0, (b1 & F_C) != 0, auth_bit,
                                  (b1 & F_D) != 0, auth))
