"""BFD control packets (RFC 5880 §4.1): a known packet, round trips, the two twins byte for byte, and a decoder that
raises ``BfdError`` and nothing else whatever it is fed."""

from __future__ import annotations

import importlib
import os
import struct

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from fastpath import bfd
from fastpath._bfd_common import BfdError, Control

NO_EXTENSIONS = bool(os.environ.get("FASTPATH_NO_EXTENSIONS"))
IMPLS = [importlib.import_module(m) for m in (["fastpath._bfd_py"] if NO_EXTENSIONS
                                              else ["fastpath._bfd_py", "fastpath._bfd"])]
u32 = st.integers(0, 2**32 - 1)


@st.composite
def controls(draw) -> Control:
    """Every packet the decoder accepts: the §6.8.6 discard rules are respected by construction."""
    state = draw(st.integers(0, 3))
    auth_present = draw(st.booleans())
    if auth_present:
        body = draw(st.binary(min_size=0, max_size=40))
        auth = bytes([draw(st.integers(0, 255)), draw(st.integers(2, 2 + len(body)))]) + body
    else:
        auth = draw(st.sampled_from([b"", b"\x00\x00\x00\x00"]))
    return Control(
        state=state,
        diag=draw(st.integers(0, 31)),
        detect_mult=draw(st.integers(1, 255)),
        my_disc=draw(st.integers(1, 2**32 - 1)),
        your_disc=draw(u32 if state <= 1 else st.integers(1, 2**32 - 1)),
        min_tx=draw(u32), min_rx=draw(u32), min_echo_rx=draw(u32),
        poll=draw(st.booleans()), final=draw(st.booleans()), cpi=draw(st.booleans()),
        auth_present=auth_present, demand=draw(st.booleans()), auth=auth,
    )


def test_a_packet_checked_by_hand() -> None:
    # FRR's first packet of a session: version 1, Down, detect mult 3, my disc 0x01020304, your disc 0, 1 s / 300 ms
    want = bytes.fromhex("20 40 03 18 01020304 00000000 000f4240 000493e0 00000000")
    assert bfd.build_control(1, 0, 3, 0x01020304, 0, 1_000_000, 300_000) == want
    c = bfd.parse_control(want)
    assert (c.state, c.state_name, c.detect_mult, c.my_disc, c.your_disc, c.min_tx, c.min_rx) == (
        1, "Down", 3, 0x01020304, 0, 1_000_000, 300_000)
    # Up with Poll, diag 3: byte 0 = 001 00011, byte 1 = 11 1 0 0 0 0 0
    p = bfd.build_control(3, 3, 5, 7, 9, 300_000, 300_000, 0, poll=True)
    assert p[:4] == bytes([0x23, 0xE0, 5, 24])
    assert p == struct.pack("!BBBBIIIII", 0x23, 0xE0, 5, 24, 7, 9, 300_000, 300_000, 0)


@given(controls())
def test_round_trip(ctrl: Control) -> None:
    assert bfd.parse_control(bfd.encode(ctrl)) == ctrl


def _reference(c: Control) -> bytes:
    """An independent encoder (``struct``) to hold both twins to."""
    flags = (c.poll << 5) | (c.final << 4) | (c.cpi << 3) | (c.auth_present << 2) | (c.demand << 1)
    return struct.pack("!BBBBIIIII", 0x20 | c.diag, (c.state << 6) | flags, c.detect_mult, 24 + len(c.auth),
                       c.my_disc, c.your_disc, c.min_tx, c.min_rx, c.min_echo_rx) + c.auth


@given(controls())
def test_twins_agree_byte_for_byte(ctrl: Control) -> None:
    wire = _reference(ctrl)
    for impl in IMPLS:
        assert impl.build_control(*ctrl) == wire, impl.__name__
        assert impl.parse_control(wire) == ctrl, impl.__name__


def _outcome(impl, data):
    try:
        return impl.parse_control(data)
    except BfdError as exc:
        return ("BfdError", str(exc))


@given(st.binary(max_size=80))
@example(b"")
@example(bytes.fromhex("20400318010203040000000000000000000000000000000000"))
def test_arbitrary_bytes_raise_only_bfd_error(data: bytes) -> None:
    for impl in IMPLS:
        _outcome(impl, data)  # anything but BfdError propagates and fails the test


@given(controls(), st.data())
def test_mutated_packets_twins_agree(ctrl: Control, data) -> None:
    buf = bytearray(bfd.encode(ctrl))
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        del buf[data.draw(st.integers(0, len(buf))):]
    outs = {impl.__name__: _outcome(impl, bytes(buf)) for impl in IMPLS}
    assert len(set(map(repr, outs.values()))) == 1, outs


GOOD = bytes.fromhex("20c0031801020304" "00000009" "000f4240" "000493e0" "00000000")
DISCARD = [
    ("short", GOOD[:23], "short"),
    ("version 0", bytes([0x00]) + GOOD[1:], "version"),
    ("version 2", bytes([0x40]) + GOOD[1:], "version"),
    ("length below 24", GOOD[:3] + b"\x17" + GOOD[4:], "below"),
    ("A bit with length 24", GOOD[:1] + bytes([GOOD[1] | 0x04]) + GOOD[2:], "below"),
    ("length above payload", GOOD[:3] + b"\x1a" + GOOD[4:], "exceeds"),
    ("detect mult 0", GOOD[:2] + b"\x00" + GOOD[3:], "multiplier"),
    ("M bit", GOOD[:1] + bytes([GOOD[1] | 0x01]) + GOOD[2:], "multipoint"),
    ("my disc 0", GOOD[:4] + b"\0\0\0\0" + GOOD[8:], "my discriminator"),
    ("your disc 0 in Up", GOOD[:8] + b"\0\0\0\0" + GOOD[12:], "your discriminator"),
    ("auth length overrun", GOOD[:1] + bytes([GOOD[1] | 0x04]) + GOOD[2:3] + b"\x1b" + GOOD[4:] + b"\x01\x09\x00",
     "authentication"),
]


@pytest.mark.parametrize(("name", "data", "why"), DISCARD, ids=[d[0] for d in DISCARD])
def test_discard_rules(bfdimpl, name: str, data: bytes, why: str) -> None:
    assert bfdimpl.parse_control(GOOD).state == 3  # each case differs from GOOD by one malformation
    with pytest.raises(BfdError, match=why):
        bfdimpl.parse_control(data)


def test_trailing_bytes_past_the_length_are_not_the_packet(bfdimpl) -> None:
    assert bfdimpl.parse_control(GOOD + b"junk") == bfdimpl.parse_control(GOOD)
    assert bfdimpl.parse_control(bytearray(GOOD)) == bfdimpl.parse_control(memoryview(GOOD))


@pytest.mark.parametrize("bad", [dict(state=4), dict(diag=32), dict(detect_mult=256), dict(my_disc=-1),
                                 dict(min_tx=2**32), dict(state=True), dict(auth="x"), dict(auth=b"x" * 232)])
def test_builder_rejects_out_of_range_arguments(bfdimpl, bad: dict) -> None:
    args = dict(state=1)
    args.update(bad)
    with pytest.raises(ValueError):
        bfdimpl.build_control(**args)


def test_non_bytes_input_is_a_bfd_error(bfdimpl) -> None:
    for junk in (None, 3, "20400318", [1, 2, 3]):
        with pytest.raises(BfdError):
            bfdimpl.parse_control(junk)
