# Inline big-endian writers shared by the fastpath extensions (py-pgproto's hton.pxd idea).
# Declarations and inline code only: there is no _pack.pyx.

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
    """
    int fastpath_u32(object o, uint32_t *out) noexcept
