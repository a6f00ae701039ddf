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
