"""The vocabulary's contracts: permanent, unique tags; frozen structs; tuple containers."""

from __future__ import annotations

import typing

import msgspec
import pytest

from events import schema

# Pinned forever: changing this list means breaking every stored log.
EVENT_TAGS = ["k8s.delete", "k8s.upsert", "speaker.down", "speaker.up"]
OBJECT_TAGS = [
    "BFDProfile", "BGPAdvertisement", "BGPPeer", "Community", "EndpointSlice", "IPAddressPool", "L2Advertisement",
    "Namespace", "Node", "Service",
]


def _tag(cls: type) -> str:
    return cls.__struct_config__.tag


def test_event_tags_are_the_pinned_set() -> None:
    tags = [_tag(c) for c in typing.get_args(schema.Event)]
    assert sorted(tags) == EVENT_TAGS
    assert len(set(tags)) == len(tags)
    assert sorted(schema.EVENT_TAGS) == EVENT_TAGS
    for tag, cls in schema.EVENT_TAGS.items():
        assert _tag(cls) == tag


def test_object_tags_are_the_pinned_set() -> None:
    tags = [_tag(c) for c in typing.get_args(schema.K8sObject)]
    assert sorted(tags) == OBJECT_TAGS
    assert sorted(schema.OBJECT_KINDS) == OBJECT_TAGS
    assert sorted(typing.get_args(schema.ObjectKind)) == OBJECT_TAGS


def _all_structs() -> list[type]:
    seen: list[type] = []
    todo = [schema._Value, schema._Object, schema._Event]
    while todo:
        c = todo.pop()
        for sub in c.__subclasses__():
            if sub not in seen:
                seen.append(sub)
                todo.append(sub)
    return seen


@pytest.mark.parametrize("cls", _all_structs(), ids=lambda c: c.__name__)
def test_structs_are_frozen_with_tuple_containers(cls: type) -> None:
    assert cls.__struct_config__.frozen
    hints = typing.get_type_hints(cls)
    for name, hint in hints.items():
        text = repr(hint)
        assert "list[" not in text and "dict[" not in text, f"{cls.__name__}.{name} uses a mutable container"


def test_frozen_refuses_assignment() -> None:
    node = schema.Node(name="n1")
    with pytest.raises(AttributeError):
        node.name = "n2"  # type: ignore[misc]


def test_tags_appear_on_the_wire() -> None:
    e = schema.K8sUpsert(obj=schema.Node(name="n1"))
    assert msgspec.json.decode(msgspec.json.encode(e)) == {
        "kind": "k8s.upsert",
        "obj": {"kind": "Node", "name": "n1", "namespace": "", "labels": [], "network_unavailable": False,
                "internal_ips": []},
    }
