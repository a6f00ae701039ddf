"""Decoders fed arbitrary and mutated bytes raise nothing but ``BgpError``; each malformation maps to the
NOTIFICATION code/subcode RFC 4271 §6 (and RFC 7313, RFC 5492) prescribes."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from fastpath import bgp, model
from fastpath.model import BgpError
from tests import golden_hex
from tests import strategies_fastpath as fst

M = b"\xff" * 16


def _decode_only_bgp_error(data: bytes, **kw) -> None:
    try:
        bgp.decode(data, **kw)
    except BgpError as exc:
        assert 1 <= exc.code <= 7 and 0 <= exc.subcode <= 255 and isinstance(exc.data, bytes)
        bgp.build_notification(exc.code, exc.subcode, exc.data[:4000])  # every error can be answered


def frame(kind: int, body: bytes, length: int | None = None) -> bytes:
    n = 19 + len(body) if length is None else length
    return M + n.to_bytes(2, "big") + bytes([kind]) + body


@given(st.binary(max_size=200))
@example(b"")
@example(M)
def test_arbitrary_bytes(data: bytes) -> None:
    _decode_only_bgp_error(data)


@given(st.integers(1, 6), st.binary(max_size=300), st.booleans())
def test_arbitrary_bodies_behind_a_valid_header(kind: int, body: bytes, as4: bool) -> None:
    _decode_only_bgp_error(frame(kind, body), as4=as4)


def _corpus() -> list[bytes]:
    return [golden_hex.load(n) for n in golden_hex.names("bgp-")]


@given(st.data(), st.booleans())
def test_mutated_valid_messages(data, as4: bool) -> None:
    msg = data.draw(st.one_of(st.sampled_from(_corpus()), fst.messages.map(bgp.encode)))
    buf = bytearray(msg)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "set", "cut", "grow"]))
        if op in ("flip", "set") and buf:
            i = data.draw(st.integers(0, len(buf) - 1))
            buf[i] = buf[i] ^ (1 << data.draw(st.integers(0, 7))) if op == "flip" else data.draw(st.integers(0, 255))
        elif op == "cut" and buf:
            del buf[data.draw(st.integers(0, len(buf) - 1)):]
        else:
            buf += data.draw(st.binary(min_size=1, max_size=10))
    if data.draw(st.booleans()) and len(buf) >= 19:  # keep the length field consistent, to get past the header
        buf[16:18] = len(buf).to_bytes(2, "big")
    _decode_only_bgp_error(bytes(buf), as4=as4)


ATTRS = bytes.fromhex("400101004002004003040a000005")  # ORIGIN IGP, empty AS_PATH, NEXT_HOP 10.0.0.5


def update(attrs: bytes, nlri: bytes = b"\x20\x0a\x00\x00\x01", withdrawn: bytes = b"") -> bytes:
    body = len(withdrawn).to_bytes(2, "big") + withdrawn + len(attrs).to_bytes(2, "big") + attrs + nlri
    return frame(2, body)


def open_msg(version=4, my_as=65001, hold=90, rid=1, params=b"") -> bytes:
    return frame(1, bytes([version]) + my_as.to_bytes(2, "big") + hold.to_bytes(2, "big") + rid.to_bytes(4, "big")
                 + bytes([len(params)]) + params)


CASES = [
    # (name, bytes, code, subcode, data or None when any)
    ("short", M[:10], 1, 2, None),
    ("bad marker", b"\xfe" + M[1:] + b"\x00\x13\x04", 1, 1, None),
    ("length below 19", M + b"\x00\x12\x04", 1, 2, b"\x00\x12"),
    ("length above max", frame(2, b"\0" * 4, length=4097), 1, 2, b"\x10\x01"),
    ("length disagrees", frame(4, b"", length=20), 1, 2, b"\x00\x14"),
    ("bad type", frame(9, b""), 1, 3, b"\x09"),
    ("keepalive with body", frame(4, b"\x00"), 1, 2, b"\x00\x14"),
    ("short open", frame(1, b"\x04\x00"), 1, 2, None),
    ("short notification", frame(3, b"\x06"), 1, 2, None),
    ("short update", frame(2, b"\x00"), 1, 2, None),
    ("route refresh length", frame(5, b"\x00\x01\x00\x01\x00"), 7, 1, None),
    ("open version 3", open_msg(version=3), 2, 1, b"\x00\x04"),
    ("open hold time 2", open_msg(hold=2), 2, 6, None),
    ("open router id 0", open_msg(rid=0), 2, 3, None),
    ("open unsupported parameter", open_msg(params=b"\x01\x02ab"), 2, 4, None),
    ("open parameter overrun", open_msg(params=b"\x02\x09\x01\x04"), 2, 0, None),
    ("open capability overrun", open_msg(params=b"\x02\x03\x41\x04\x00"), 2, 0, None),
    ("open bad 4-octet AS capability", open_msg(params=b"\x02\x04\x41\x02\x00\x01"), 2, 0, None),
    ("withdrawn length overrun", frame(2, b"\x00\x50\x00\x00"), 3, 1, None),
    ("attribute length overrun", frame(2, b"\x00\x00\x00\x50"), 3, 1, None),
    ("attribute truncated header", update(b"\x40", b""), 3, 1, None),
    ("attribute value overrun", update(b"\x40\x01\x05\x00", b""), 3, 5, None),
    ("duplicate attribute", update(ATTRS + b"\x40\x01\x01\x00"), 3, 1, None),
    ("unknown well-known attribute", update(ATTRS + b"\x40\x63\x00"), 3, 2, b"\x40\x63\x00"),
    ("missing ORIGIN", update(bytes.fromhex("4002004003040a000005")), 3, 3, b"\x01"),
    ("missing AS_PATH", update(bytes.fromhex("400101004003040a000005")), 3, 3, b"\x02"),
    ("missing NEXT_HOP", update(bytes.fromhex("40010100400200")), 3, 3, b"\x03"),
    ("ORIGIN flags", update(bytes.fromhex("c00101004002004003040a000005")), 3, 4, bytes.fromhex("c0010100")),
    ("ORIGIN length", update(bytes.fromhex("40010200004002004003040a000005")), 3, 5, bytes.fromhex("4001020000")),
    ("ORIGIN value", update(bytes.fromhex("400101074002004003040a000005")), 3, 6, bytes.fromhex("40010107")),
    ("NEXT_HOP length", update(bytes.fromhex("40010100400200400303000000")), 3, 5, None),
    ("LOCAL_PREF length", update(ATTRS + bytes.fromhex("4005020001")), 3, 5, None),
    ("MED flags", update(ATTRS + bytes.fromhex("400404000000ff")), 3, 4, None),
    ("COMMUNITIES length", update(ATTRS + bytes.fromhex("c0080300000a")), 3, 9, None),
    ("LARGE_COMMUNITIES length", update(ATTRS + bytes.fromhex("c02004" + "00" * 4)), 3, 9, None),
    ("AS_PATH segment type", update(bytes.fromhex("40010100400206090100000001" + "4003040a000005")), 3, 11, None),
    ("AS_PATH segment overrun", update(bytes.fromhex("400101004002060205000000014003040a000005")), 3, 11, None),
    ("AS_PATH empty segment", update(bytes.fromhex("40010100400202020040" + "03040a000005")), 3, 11, None),
    ("NLRI prefix too long", update(ATTRS, b"\x21\x0a\x00\x00\x01\x00"), 3, 10, None),
    ("NLRI prefix truncated", update(ATTRS, b"\x20\x0a\x00"), 3, 10, None),
    ("withdrawn prefix too long", frame(2, b"\x00\x02\x29\x01\x00\x00"), 3, 10, None),
    ("MP_REACH unknown family", update(bytes.fromhex("40010100400200800e0500190104ff"), b""), 3, 9, None),
    ("MP_REACH bad next-hop length", update(bytes.fromhex("40010100400200800e0700020105") + b"\0" * 5, b""), 3, 9, None),
    ("MP_UNREACH truncated", update(bytes.fromhex("800f020002"), b""), 3, 9, None),
    ("MP_UNREACH bad prefix", update(bytes.fromhex("800f0500020181ff"), b""), 3, 9, None),
]


@pytest.mark.parametrize(("name", "data", "code", "subcode", "edata"), CASES, ids=[c[0] for c in CASES])
def test_error_table(name: str, data: bytes, code: int, subcode: int, edata: bytes | None) -> None:
    with pytest.raises(BgpError) as info:
        bgp.decode(data, max_len=4096)
    assert (info.value.code, info.value.subcode) == (code, subcode), info.value
    if edata is not None:
        assert info.value.data == edata


def test_a_valid_message_of_each_kind_decodes() -> None:
    # the error table's inputs differ from these by the one malformation each case names
    assert isinstance(bgp.decode(update(ATTRS)), model.Update)
    assert isinstance(bgp.decode(open_msg()), model.Open)
    assert isinstance(bgp.decode(frame(5, b"\x00\x01\x00\x01")), model.RouteRefresh)
    assert bgp.decode(frame(3, b"\x06\x02hi")) == model.Notification(6, 2, b"hi")


def test_two_octet_as_path_is_malformed_when_read_as_four_octets() -> None:
    msg = golden_hex.load("bgp-update-ebgp-as2.hex")
    with pytest.raises(BgpError) as info:
        bgp.decode(msg, as4=True)
    assert (info.value.code, info.value.subcode) == (3, 11)


def test_extended_message_only_when_allowed() -> None:
    big = bgp.pack_updates([0xC6120000 + i for i in range(2000)], model.Attrs(next_hop=1), max_len=65535)[0]
    assert len(big) > 4096
    with pytest.raises(BgpError) as info:
        bgp.decode(big, max_len=4096)
    assert (info.value.code, info.value.subcode) == (1, 2)
    assert len(bgp.decode(big, max_len=65535).nlri) == 2000


def test_stream_header_errors() -> None:
    with pytest.raises(BgpError) as info:
        bgp.split(b"\x00" * 19)
    assert info.value.code == 1 and info.value.subcode == 1
    with pytest.raises(BgpError):
        bgp.split(M + b"\xff\xff\x02", max_len=4096)
    assert bgp.split(M + b"\x00") == ([], 0)
