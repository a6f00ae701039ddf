"""BFD control packets (RFC 5880 §4.1), pure Python: the specification the compiled ``_bfd`` must match byte for
byte.

``build_control`` writes a packet; ``parse_control`` reads one and raises :class:`BfdError` — and nothing else —
for every packet RFC 5880 §6.8.6 says to discard before any session is looked at: short, version ≠ 1, length
field below 24 (26 with the A bit) or above the bytes received, detect multiplier 0, the M bit set, my
discriminator 0, your discriminator 0 in a state other than Down/AdminDown, an authentication section whose own
length does not fit. Bytes past the length field are ignored (they are not part of the packet).
"""

from __future__ import annotations

import struct

from fastpath._bfd_common import FLAG_A, FLAG_C, FLAG_D, FLAG_F, FLAG_M, FLAG_P, HEADER_LEN, BfdError, Control

_HDR = struct.Struct("!BBBBIIIII")
_U32 = 0xFFFFFFFF


def _u(value: object, bits: int, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value >> bits:
        raise ValueError(f"{name} must be an int in 0..{(1 << bits) - 1}, got {value!r}")
    return value


def build_control(state, diag=0, detect_mult=3, my_disc=1, your_disc=0, min_tx=1000000, min_rx=1000000,
                  min_echo_rx=0, poll=False, final=False, cpi=False, auth_present=False, demand=False, auth=b""):
    """One control packet. Intervals in µs; ``auth`` is a raw authentication section appended after the 24 bytes
    (its presence is signalled by ``auth_present``, the A bit, independently — the caller decides). Arguments out of
    their field's range raise ``ValueError``."""
    _u(state, 2, "state")
    _u(diag, 5, "diag")
    _u(detect_mult, 8, "detect_mult")
    _u(my_disc, 32, "my_disc")
    _u(your_disc, 32, "your_disc")
    _u(min_tx, 32, "min_tx")
    _u(min_rx, 32, "min_rx")
    _u(min_echo_rx, 32, "min_echo_rx")
    if not isinstance(auth, (bytes, bytearray)) or len(auth) > 255 - HEADER_LEN:
        raise ValueError(f"auth must be at most {255 - HEADER_LEN} bytes, got {auth!r}")
    flags = ((FLAG_P if poll else 0) | (FLAG_F if final else 0) | (FLAG_C if cpi else 0)
             | (FLAG_A if auth_present else 0) | (FLAG_D if demand else 0))
    return _HDR.pack((1 << 5) | diag, (state << 6) | flags, detect_mult, HEADER_LEN + len(auth), my_disc, your_disc,
                     min_tx, min_rx, min_echo_rx) + bytes(auth)


def parse_control(data):
    """The :class:`Control` in ``data`` (bytes-like), or :class:`BfdError` naming why it must be discarded."""
    try:
        view = memoryview(data).cast("B")
    except (TypeError, ValueError):
        raise BfdError(f"expected bytes, got {type(data).__name__}") from None
    n = view.nbytes
    if n < HEADER_LEN:
        raise BfdError(f"short packet: {n} bytes, the header is {HEADER_LEN}")
    b0, b1, mult, length, my_disc, your_disc, min_tx, min_rx, min_echo = _HDR.unpack_from(view, 0)
    if b0 >> 5 != 1:
        raise BfdError(f"version {b0 >> 5}, expected 1")
    auth_bit = bool(b1 & FLAG_A)
    if length < (HEADER_LEN + 2 if auth_bit else HEADER_LEN):
        raise BfdError(f"length field {length} below the minimum")
    if length > n:
        raise BfdError(f"length field {length} exceeds the {n} bytes received")
    if mult == 0:
        raise BfdError("detect multiplier 0")
    if b1 & FLAG_M:
        raise BfdError("multipoint bit set")
    if my_disc == 0:
        raise BfdError("my discriminator 0")
    state = b1 >> 6
    if your_disc == 0 and state > 1:
        raise BfdError("your discriminator 0 outside Down/AdminDown")
    auth = bytes(view[HEADER_LEN:length])
    if auth_bit and not 2 <= auth[1] <= len(auth):
        raise BfdError(f"authentication length {auth[1]} does not fit the {len(auth)}-byte section")
    return Control(state, b0 & 0x1F, mult, my_disc, your_disc, min_tx, min_rx, min_echo,
                   bool(b1 & FLAG_P), bool(b1 & FLAG_F), bool(b1 & FLAG_C), auth_bit, bool(b1 & FLAG_D), auth)


def encode(ctrl: Control) -> bytes:
    """The bytes of a :class:`Control` (``parse_control``'s inverse)."""
    return build_control(*ctrl)
