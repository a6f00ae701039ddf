"""``streamlb import metallb``: a MetalLB dump becomes a log whose replay keeps every current assignment."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from events import logfile, schema, upcast
from reconciler.runtime.kube import migrate
from reconciler.runtime.cli.app import app
from tests.kube import metallb_dump

runner = CliRunner()


@pytest.fixture(scope="module")
def dump(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, list[str]]]:
    cfg, cluster, expected = metallb_dump.cluster_dump(1000, seed=7, pending=3)
    d = tmp_path_factory.mktemp("dump")
    (d / "metallb.yaml").write_text(cfg)
    (d / "cluster.yaml").write_text(cluster)
    return d / "metallb.yaml", d / "cluster.yaml", expected


def _replay(path: Path) -> dict:
    res = runner.invoke(app, ["replay", str(path), "--output", "json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_thousand_services_replay_to_exactly_their_current_ips(dump, tmp_path: Path) -> None:
    cfg, cluster, expected = dump
    assert len(expected) == 1000
    out = tmp_path / "imported.evlog"
    res = runner.invoke(app, ["import", "metallb", str(cfg), str(cluster), "--out", str(out), "--output", "json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["services_with_ip"] == 1000 and report["assignments_kept"] == 1000
    assert report["assignments_changed"] == 0 and report["rejected"] == []
    replayed = _replay(out)
    assert replayed["config"]["valid"] is True
    got = {k: v["ingress"] for k, v in replayed["services"].items() if k in expected}
    assert got == expected  # every Service, exactly its addresses, in status order
    # dual-stack ones are really there (the generator made some)
    assert sum(1 for ips in expected.values() if len(ips) == 2) > 10
    # the report's hash is the hash of what replay computes from the written file
    assert report["state_hash"] == replayed["state_hash"]


def test_pending_services_are_reported_exactly_when_streamlb_would_serve_them(dump, tmp_path: Path) -> None:
    cfg, cluster, _ = dump
    out = tmp_path / "x.evlog"
    res = runner.invoke(app, ["import", "metallb", str(cfg), str(cluster), "--out", str(out), "--output", "json"])
    report = json.loads(res.stdout)
    replayed = _replay(out)
    for j in range(3):
        key = f"reserved-only/waiting-{j}"
        served = bool(replayed["services"][key]["ingress"])
        flagged = [f for f in report["findings"] if f["subject"] == f"Service {key}"]
        assert bool(flagged) == served
        if served:
            assert flagged[0]["severity"] == "warning" and "pending" in flagged[0]["message"]


def test_report_names_what_streamlb_ignores(dump) -> None:
    cfg, cluster, _ = dump
    res = migrate.import_metallb([(str(cfg), cfg.read_text()), (str(cluster), cluster.read_text())])
    msgs = {(f.subject, f.message.split(":")[0]) for f in res.findings}
    assert any(s == "BGPPeer metallb-system/tor-b" and m.startswith("spec.vrf=") for s, m in msgs)
    for fld in ("bfdProfile", "ebgpMultiHop", "connectTime"):  # enforced by the speaker now: no finding
        assert not any(m.startswith(f"spec.{fld}=") for s, m in msgs), fld
    assert not any(m.startswith("spec.keepaliveTime=") for s, m in msgs)
    assert ("ConfigMap metallb-system/bgpextras", "raw FRR configuration appended by MetalLB in FRR mode is "
            "ignored by streamlb") in {(f.subject, f.message) for f in res.findings}
    subjects = {f.subject for f in res.findings}
    assert "FRRConfiguration frr-k8s-system/metallb-worker-001" in subjects
    assert "BFDProfile metallb-system/fast" not in subjects  # no echoMode: nothing to report
    assert "Service shop/other-lb" in subjects  # another load-balancer class: left alone
    assert any("random order" in f.message and "general, spare" in f.message for f in res.findings)
    # both BGPPeer versions are read, and imported as the API server serves them (v1beta2)
    peers = {e.obj.name: e.obj for e in res.events if isinstance(e.obj, schema.BGPPeer)}
    assert peers["tor-a"].api_version == peers["tor-b"].api_version == "v1beta2"
    assert peers["tor-a"].hold_time_ms == 90_000 and peers["tor-a"].peer_asn == 64500
    assert peers["tor-b"].password_secret == schema.SecretRef(namespace="metallb-system", name="tor-b-md5")
    assert not any(f.severity == "error" for f in res.findings)


def test_no_secret_reaches_the_log(tmp_path: Path) -> None:
    peer = {"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
            "metadata": {"name": "p", "namespace": "metallb-system"},
            "spec": {"myASN": 64512, "peerASN": 64513, "peerAddress": "10.0.0.1", "password": "hunter2-plain"}}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "metallb-system"},
              "stringData": {"password": "hunter3-secret"}, "data": {"password": "aHVudGVyMy1zZWNyZXQ="}}
    src = tmp_path / "d.yaml"
    src.write_text(yaml.safe_dump_all([peer, secret]))
    out = tmp_path / "o.jsonl"
    res = runner.invoke(app, ["import", "metallb", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    blob = out.read_bytes()
    assert b"hunter2" not in blob and b"hunter3" not in blob and b"aHVudGVy" not in blob
    ev = json.loads(blob.splitlines()[0])
    assert ev["obj"]["password_set"] is True


def _svc(name: str, ip: str | None, cluster_ip: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "clusterIP": cluster_ip, "ports": [{"port": 80}]},
            "status": {"loadBalancer": {"ingress": [{"ip": ip}]} if ip else {}}}


POOL = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "p", "namespace": "metallb-system"}, "spec": {"addresses": ["10.0.0.0/30"]}}


def test_holders_reclaim_before_pending_services_allocate(tmp_path: Path) -> None:
    # 'a-pending' sorts (and is listed) before 'z-holder', whose address is the lowest free one: folding the dump
    # in its own order would hand 10.0.0.0 to the pending Service and move the holder.
    docs = [_svc("a-pending", None, "10.96.0.1"), POOL, _svc("z-holder", "10.0.0.0", "10.96.0.2")]
    res = migrate.import_metallb([("d.yaml", yaml.safe_dump_all(docs))])
    assert res.assignments_kept == 1 and res.assignments_changed == 0
    kinds = [type(e.obj).__name__ + "/" + e.obj.name for e in res.events]
    assert kinds == ["IPAddressPool/p", "Service/z-holder", "Service/a-pending"]


def test_an_assignment_that_cannot_be_kept_fails_unless_allowed(tmp_path: Path) -> None:
    docs = [POOL, _svc("web", "10.0.0.1", "10.96.0.1"), _svc("lost", "198.51.100.7", "10.96.0.2")]
    src = tmp_path / "d.yaml"
    src.write_text(yaml.safe_dump_all(docs))
    out = tmp_path / "o.evlog"
    res = runner.invoke(app, ["import", "metallb", str(src), "--out", str(out), "--output", "json"])
    assert res.exit_code == 1
    report = json.loads(res.stdout)
    assert report["assignments_changed"] == 1
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    assert [f["subject"] for f in errors] == ["Service default/lost"]
    assert "198.51.100.7" in errors[0]["message"]
    assert out.exists()  # written anyway, for inspection
    assert runner.invoke(app, ["import", "metallb", str(src), "--allow-changes"]).exit_code == 0


def test_output_is_independent_of_input_order(tmp_path: Path) -> None:
    cfg, cluster, _ = metallb_dump.cluster_dump(120, seed=3)
    docs = yaml.safe_load(cfg)["items"] + yaml.safe_load(cluster)["items"]
    a = migrate.import_metallb([("a", yaml.safe_dump_all(docs))])
    random.Random(5).shuffle(docs)
    b = migrate.import_metallb([("b", yaml.safe_dump_all(docs))])
    assert logfile.encode_file(a.events) == logfile.encode_file(b.events)


def test_stdin_and_json_input(tmp_path: Path) -> None:
    docs = {"apiVersion": "v1", "kind": "List", "items": [POOL, _svc("web", "10.0.0.2", "10.96.0.1")]}
    out = tmp_path / "o.evlog"
    res = runner.invoke(app, ["import", "metallb", "-", "--out", str(out), "--output", "json"],
                        input=json.dumps(docs))
    assert res.exit_code == 0, res.output
    events = [upcast.decode_versioned(f.data, 1) for f in logfile.iter_frames(out.read_bytes())]
    assert [e.obj.name for e in events] == ["p", "web"]


def test_bad_input_names_file_and_line_without_traceback(tmp_path: Path) -> None:
    src = tmp_path / "bad.yaml"
    src.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: [unclosed\n")
    res = runner.invoke(app, ["import", "metallb", str(src)])
    assert res.exit_code == 2
    assert f"{src}:" in res.stderr and "Traceback" not in res.output + res.stderr
    res = runner.invoke(app, ["import", "metallb", str(tmp_path / "missing.yaml")])
    assert res.exit_code == 2 and "missing.yaml" in res.stderr


def test_malformed_objects_are_rejected_with_a_reason_not_fatal(tmp_path: Path) -> None:
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "namespace": "d"},
           "spec": {"ports": [{"port": "eighty"}]}}
    res = migrate.import_metallb([("d.yaml", yaml.safe_dump_all([POOL, bad]))])
    assert len(res.rejected) == 1 and "d.yaml: document 2" == res.rejected[0]["where"]
    assert "port" in res.rejected[0]["reason"]
    assert [e.obj.name for e in res.events] == ["p"]


def test_bfd_echo_mode_is_reported_unsupported() -> None:
    text = ("apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata: {name: echo, namespace: metallb-system}\n"
            "spec: {echoMode: true, receiveInterval: 300}\n")
    res = migrate.import_metallb([("bfd.yaml", text)])
    msgs = [f.message for f in res.findings if f.subject == "BFDProfile metallb-system/echo"]
    assert len(msgs) == 1 and "echo is not supported" in msgs[0]
