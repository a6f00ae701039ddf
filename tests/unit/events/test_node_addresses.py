"""Node InternalIPs enter the log (for ``streamlb router-config``): canonical, in status order, nothing else."""

from __future__ import annotations

import msgspec
import pytest

from events import codec, kube, schema


def node(addresses) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "status": {"addresses": addresses}}


def test_internal_ips_are_kept_canonical_and_in_order() -> None:
    got = kube.translate(node([
        {"type": "Hostname", "address": "n1"},
        {"type": "InternalIP", "address": "2001:DB8::0:1"},
        {"type": "ExternalIP", "address": "203.0.113.9"},
        {"type": "InternalIP", "address": " 10.0.0.11"},
        {"type": "InternalIP", "address": "2001:db8::1"},  # the same address again
        {"type": "InternalIP", "address": "not-an-ip"},  # the kubelet's business; left out, not fatal
    ]))
    assert isinstance(got, schema.Node)
    assert got.internal_ips == ("2001:db8::1", "10.0.0.11")


def test_a_node_without_addresses_has_none() -> None:
    got = kube.translate({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    assert isinstance(got, schema.Node) and got.internal_ips == ()


def test_a_non_canonical_internal_ip_in_an_event_is_refused() -> None:
    ev = schema.K8sUpsert(obj=schema.Node(name="n1", internal_ips=("2001:DB8::1",)))
    with pytest.raises(codec.DecodeError, match="internalIPs"):
        codec.decode(msgspec.msgpack.encode(ev))
    ok = schema.K8sUpsert(obj=schema.Node(name="n1", internal_ips=("2001:db8::1",)))
    assert codec.decode(msgspec.msgpack.encode(ok)) == ok
