"""Codec round trips and strict decoding."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given

from events import codec, schema
from tests import strategies as S


@given(S.events)
def test_msgpack_round_trip(event: schema.Event) -> None:
    assert codec.decode(codec.encode(event)) == event


@given(S.events)
def test_json_round_trip(event: schema.Event) -> None:
    assert codec.decode_json(codec.encode_json(event)) == event
    assert codec.from_builtins(codec.to_builtins(event)) == event


@given(S.events)
def test_encode_into_matches_encode(event: schema.Event) -> None:
    buf = bytearray()
    codec.encode_into(event, buf)
    assert bytes(buf) == codec.encode(event)


@pytest.mark.parametrize(
    "doc, fragment",
    [
        (b'{"kind": "k8s.bogus", "node": "a"}', "Invalid value 'k8s.bogus'"),
        (b'{"kind": "speaker.up", "node": 7}', "Expected `str`, got `int`"),
        (b'{"kind": "speaker.up"}', "missing required field `node`"),
        (b'{"kind": "speaker.up", "node": "a", "extra": 1}', "unknown field `extra`"),
        (b'{"kind": "speaker.up", "node": ""}', "empty node name"),
        (b'{"kind": "k8s.upsert", "obj": {"kind": "Gadget", "name": "x"}}', "Invalid value 'Gadget'"),
        (b'{"kind": "k8s.upsert", "obj": {"kind": "Service", "name": "s", "cluster_ips": ["10.0.0.300"]}}',
         "is not an IP address"),
        (b'{"kind": "k8s.upsert", "obj": {"kind": "Service", "name": "s", "ingress_ips": ["2001:DB8::1"]}}',
         "not in canonical form"),
        (b'{"kind": "k8s.upsert", "obj": {"kind": "Node", "name": "n", "labels": [["b", "1"], ["a", "2"]]}}',
         "keys must be unique and sorted"),
        (b'{"kind": "k8s.upsert", "obj": {"kind": "Service", "name": "s", "ports": [{"port": 70000}]}}',
         "out of range"),
        (b'[1, 2]', "Expected `object`, got `array`"),
        (b'{"kind": "k8s.upsert", "obj": {"kind": "EndpointSlice", "name": "e", '
         b'"endpoints": [{"addresses": ["fe80::1%eth0"]}]}}', "is not an IP address"),
    ],
)
def test_json_rejections_have_reasons(doc: bytes, fragment: str) -> None:
    with pytest.raises(codec.DecodeError) as info:
        codec.decode_json(doc)
    assert fragment in str(info.value)


def test_msgpack_garbage_is_a_decode_error() -> None:
    for blob in (b"", b"\xc1", b"\x81\xa4kind\xa9speaker.u", msgspec.msgpack.encode({"kind": 5})):
        with pytest.raises(codec.DecodeError):
            codec.decode(blob)


@given(S.events, S.events)
def test_truncated_msgpack_never_escapes_decode_error(a: schema.Event, b: schema.Event) -> None:
    blob = codec.encode(a)
    for cut in (1, len(blob) // 2, len(blob) - 1):
        try:
            codec.decode(blob[:cut])
        except codec.DecodeError:
            pass
