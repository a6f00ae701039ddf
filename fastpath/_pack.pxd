# Inline big-endian writers shared by the fastpath extensions (py-pgproto's hton.pxd idea).
# Declarations and inline code only: there is no _pack.pyx.

from cpython.object cimport PyObject
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t


cdef inline void put_u16(unsigned char *p, uint16_t v) noexcept nogil:
    p[0] = <unsigned char>(v >> 8)
    p[1] = <unsigned char>v


cdef inline void put_u32(unsigned char *p, uint32_t v) noexcept nogil:
    p[0] = <unsigned char>(v >> 24)
    p[1] = <unsigned char>(v >> 16)
    p[2] = <unsigned char>(v >> 8)
    p[3] = <unsigned char>v


cdef inline uint32_t sum16(const unsigned char *p, Py_ssize_t n) noexcept nogil:
    # Ones'-complement accumulation of big-endian 16-bit words (RFC 1071); an odd tail byte is padded with zero.
    cdef uint32_t s = 0
    cdef Py_ssize_t i = 0
    while i + 1 < n:
        s += (<uint32_t>p[i] << 8) | p[i + 1]
        i += 2
    if i < n:
        s += <uint32_t>p[i] << 8
    return s


cdef inline uint16_t fold16(uint32_t s) noexcept nogil:
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return <uint16_t>(~s & 0xFFFF)


cdef extern from *:
    """
    #include <Python.h>
    #include <stdint.h>
    #include <string.h>
    /* Read a plain non-negative int of at most 32 bits without creating objects or raising: 1 = done, 0 = let
       the caller take its checked slow path (not an exact int, negative, too big). CPython < 3.12 keeps the
       30-bit digits in ob_digit with the sign in ob_size; 3.12+ has the unstable compact-value API. */
    static inline int fastpath_u32(PyObject *o, uint32_t *out) {
        if (!PyLong_CheckExact(o)) return 0;
    #if PY_VERSION_HEX < 0x030C0000
        Py_ssize_t size = Py_SIZE(o);
        const digit *d = ((PyLongObject *)o)->ob_digit;
        if (size == 0) { *out = 0; return 1; }
        if (size == 1) { *out = (uint32_t)d[0]; return 1; }
        if (size == 2) {
            uint64_t v = (uint64_t)d[0] | ((uint64_t)d[1] << PyLong_SHIFT);
            if (v <= 0xFFFFFFFFu) { *out = (uint32_t)v; return 1; }
        }
        return 0;
    #else
        if (PyUnstable_Long_IsCompact((PyLongObject *)o)) {
            Py_ssize_t v = PyUnstable_Long_CompactValue((PyLongObject *)o);
            if (v < 0) return 0;
            *out = (uint32_t)v; return 1;
        }
        unsigned long v = PyLong_AsUnsignedLong(o);
        if (v == (unsigned long)-1 && PyErr_Occurred()) { PyErr_Clear(); return 0; }
        if (v > 0xFFFFFFFFul) return 0;
        *out = (uint32_t)v; return 1;
    #endif
    }
    /* The packer's hot loop: encode items[0..n) while each is a plain int below 2**32 (a /32: length byte 32
       and four address bytes). Returns how many were encoded; the caller handles the rest one by one. */
    static inline Py_ssize_t fastpath_hosts32(PyObject *const *items, Py_ssize_t n, unsigned char *buf, uint8_t *size) {
        Py_ssize_t i;
        uint32_t v;
        for (i = 0; i < n; i++) {
            PyObject *o = items[i];
    #if PY_VERSION_HEX < 0x030C0000
            /* inline the common cases of fastpath_u32: one or two 30-bit digits */
            if (Py_TYPE(o) != &PyLong_Type) break;
            Py_ssize_t sz = Py_SIZE(o);
            const digit *d = ((PyLongObject *)o)->ob_digit;
            if (sz == 2) {
                uint64_t w = (uint64_t)d[0] | ((uint64_t)d[1] << PyLong_SHIFT);
                if (w > 0xFFFFFFFFu) break;
                v = (uint32_t)w;
            } else if (sz == 1) {
                v = (uint32_t)d[0];
            } else if (sz == 0) {
                v = 0;
            } else break;
    #else
            if (!fastpath_u32(o, &v)) break;
    #endif
            buf[0] = 32;
            v = __builtin_bswap32(v);
            memcpy(buf + 1, &v, 4);
            buf += 5;
            size[i] = 5;
        }
        return i;
    }
    /* A plain non-negative int below 2**128 as 16 big-endian bytes: 1 = done, 0 = take the checked slow path. */
    static inline int fastpath_u128(PyObject *o, unsigned char *out) {
        if (!PyLong_CheckExact(o)) return 0;
    #if PY_VERSION_HEX < 0x030D0000
        if (_PyLong_AsByteArray((PyLongObject *)o, out, 16, 0, 0) < 0) { PyErr_Clear(); return 0; }
    #else
        if (_PyLong_AsByteArray((PyLongObject *)o, out, 16, 0, 0, 1) < 0) { PyErr_Clear(); return 0; }
    #endif
        return 1;
    }
    """
    int fastpath_u32(PyObject *o, uint32_t *out) noexcept
    int fastpath_u128(PyObject *o, unsigned char *out) noexcept
    Py_ssize_t fastpath_hosts32(PyObject **items, Py_ssize_t n, unsigned char *buf, uint8_t *size) noexcept
