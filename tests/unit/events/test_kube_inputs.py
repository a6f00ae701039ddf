"""Kubernetes objects, watch events and YAML into events; every malformed record has a reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from events import inputs, kube, schema

SVC = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {
        "name": "web", "namespace": "default", "labels": {"app": "web"},
        "annotations": {"metallb.io/allow-shared-ip": "k", "kubectl.kubernetes.io/last-applied": "{}"},
    },
    "spec": {
        "type": "LoadBalancer", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10", "FD00::0A"],
        "ipFamilyPolicy": "PreferDualStack", "externalTrafficPolicy": "Local", "selector": {"app": "web"},
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}, {"port": 53, "protocol": "UDP"}],
    },
    "status": {"loadBalancer": {"ingress": [{"ip": "192.168.1.5"}, {"hostname": "lb.example"}]}},
}


def test_service_translation_is_canonical() -> None:
    svc = kube.translate(SVC)
    assert isinstance(svc, schema.Service)
    assert svc.cluster_ips == ("10.96.0.10", "fd00::a")
    assert svc.annotations == (("metallb.io/allow-shared-ip", "k"),)  # unrelated annotations dropped
    assert svc.ports == (schema.ServicePort(protocol="TCP", port=80), schema.ServicePort(protocol="UDP", port=53))
    assert svc.ingress_ips == ("192.168.1.5",)  # hostname-only entries ignored
    assert svc.external_traffic_policy == "Local" and svc.ip_family_policy == "PreferDualStack"


def test_wrong_types_are_refused_with_a_path() -> None:
    bad = json.loads(json.dumps(SVC))
    bad["spec"]["ports"][0]["port"] = "eighty"
    with pytest.raises(kube.TranslateError, match=r"Expected `int`, got `str` - at `\$.spec.ports\[0\].port`"):
        kube.translate(bad)


def test_unknown_kinds_are_ignored_with_a_key() -> None:
    assert kube.translate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}) == kube.Ignored(
        "v1/ConfigMap"
    )
    other_ns = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                "metadata": {"name": "p", "namespace": "elsewhere"}, "spec": {"addresses": ["10.0.0.0/24"]}}
    assert isinstance(kube.translate(other_ns), kube.Ignored)
    assert isinstance(kube.translate(other_ns, ("elsewhere",)), schema.IPAddressPool)


def test_bgppeer_v1beta1_and_v1beta2_and_secrets_stay_out() -> None:
    base = {"kind": "BGPPeer", "metadata": {"name": "r1", "namespace": "metallb-system"},
            "spec": {"myASN": 64512, "peerASN": 64513, "peerAddress": "10.0.0.1", "holdTime": "1m30s",
                     "password": "hunter2", "nodeSelectors": [{"matchLabels": {"rack": "a"}}]}}
    v1 = kube.translate({**base, "apiVersion": "metallb.io/v1beta1"})
    v2 = kube.translate({**base, "apiVersion": "metallb.io/v1beta2",
                         "spec": {**base["spec"], "password": "", "passwordSecret": {"name": "bgp-secret"}}})
    assert isinstance(v1, schema.BGPPeer) and isinstance(v2, schema.BGPPeer)
    assert v1.api_version == "v1beta1" and v2.api_version == "v1beta2"
    assert v1.hold_time_ms == 90_000 and v1.password_set and "hunter2" not in repr(v1)
    assert v2.password_secret == schema.SecretRef(name="bgp-secret") and not v2.password_set
    assert v1.node_selectors[0].match_labels == (("rack", "a"),)


@pytest.mark.parametrize("text, ms", [("90s", 90_000), ("1m30s", 90_000), ("500ms", 500), ("0", 0), ("1.5s", 1500)])
def test_durations(text: str, ms: int) -> None:
    assert kube.parse_duration_ms(text, "x") == ms


@pytest.mark.parametrize("text", ["", "90", "abc", "5 s", "-1s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(kube.TranslateError, match="invalid duration"):
        kube.parse_duration_ms(text, "x")


def _write(tmp_path: Path, name: str, text: str | bytes) -> str:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(p)


def _outcomes(path: str) -> list[tuple[int, list]]:
    return [(r.number, r.outcomes) for r in inputs.read_file(path)]


def test_watch_event_lines(tmp_path: Path) -> None:
    deleted = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"}}
    lines = [
        json.dumps({"type": "ADDED", "object": SVC}),
        json.dumps({"type": "BOOKMARK", "object": {"kind": "Service", "metadata": {"resourceVersion": "12"}}}),
        "{not json",
        json.dumps({"type": "ERROR", "object": {"kind": "Status", "message": "too old resource version"}}),
        json.dumps({"type": "DELETED", "object": deleted}),
        json.dumps({"type": "MODIFIED", "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}}),
        json.dumps({"type": "WHATEVER", "object": {}}),
    ]
    out = _outcomes(_write(tmp_path, "w.jsonl", "\n".join(lines) + "\n"))
    assert [n for n, _ in out] == [1, 2, 3, 4, 5, 6, 7]
    assert isinstance(out[0][1][0], inputs.Accepted)
    assert isinstance(out[1][1][0], inputs.Skipped)
    assert out[2][1][0].reason.startswith("invalid JSON")
    assert out[3][1][0] == inputs.Rejected("watch ERROR: too old resource version")
    assert out[4][1][0] == inputs.Accepted(
        schema.K8sDelete(ref=schema.ObjectRef(kind="Service", namespace="default", name="web"))
    )
    assert out[5][1][0] == inputs.Ignored("v1/Pod")
    assert "unknown watch event type" in out[6][1][0].reason


def test_pretty_printed_watch_stream(tmp_path: Path) -> None:
    text = json.dumps({"type": "ADDED", "object": SVC}, indent=4) + "\n" + json.dumps(
        {"type": "ADDED", "object": {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}}, indent=4
    )
    out = _outcomes(_write(tmp_path, "kubectl.out", text))
    assert [type(o[1][0]) for o in out] == [inputs.Accepted, inputs.Accepted]


def test_yaml_documents_and_lists(tmp_path: Path) -> None:
    text = """
apiVersion: v1
kind: List
items:
  - {apiVersion: v1, kind: Node, metadata: {name: n1}}
  - {apiVersion: v1, kind: Node, metadata: {}}
---
apiVersion: v1
kind: Namespace
metadata: {name: team-a, labels: {team: a}}
---
just a string
"""
    out = _outcomes(_write(tmp_path, "c.yaml", text))
    assert len(out) == 3
    first = out[0][1]
    assert isinstance(first[0], inputs.Accepted) and first[1].reason.startswith("items[1]: Node: metadata.name")
    assert out[1][1][0] == inputs.Accepted(schema.K8sUpsert(obj=schema.Namespace(name="team-a", labels=(("team", "a"),))))
    assert "expected a Kubernetes object" in out[2][1][0].reason


def test_native_lines_with_unknown_tags(tmp_path: Path) -> None:
    text = '{"kind": "speaker.up", "node": "a"}\n{"kind": "speaker.sideways", "node": "a"}\n'
    out = _outcomes(_write(tmp_path, "n.jsonl", text))
    assert out[0][1] == [inputs.Accepted(schema.SpeakerUp(node="a"))]
    assert "Invalid value 'speaker.sideways'" in out[1][1][0].reason


def test_bad_yaml_is_a_rejected_record(tmp_path: Path) -> None:
    out = _outcomes(_write(tmp_path, "bad.yaml", "apiVersion: v1\nkind: Node\nmetadata: {name: [unclosed\n"))
    assert "invalid YAML" in out[-1][1][0].reason


@pytest.mark.parametrize(
    "name, blob, message",
    [
        ("binary.bin", b"\x00\xff\xfe garbage", "cannot detect the format"),
        ("empty.txt", b"", "empty file"),
        ("prose.txt", b"just some words\n", "cannot detect the format"),
    ],
)
def test_undetectable_files(tmp_path: Path, name: str, blob: bytes, message: str) -> None:
    with pytest.raises(inputs.InputError, match=message):
        inputs.read_file(_write(tmp_path, name, blob))


def test_missing_file() -> None:
    with pytest.raises(inputs.InputError, match="cannot read"):
        inputs.read_file("/nonexistent/cluster.yaml")
