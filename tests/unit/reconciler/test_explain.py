"""``reconciler.explain`` and ``streamlb explain``: why a Service has these IPs or none."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from events import codec, schema
from reconciler import explain, fold, state as statemod
from reconciler.runtime.cli.app import app

NS = "metallb-system"
runner = CliRunner()


def pool(name: str, *addresses: str, **kw) -> schema.K8sUpsert:
    return schema.K8sUpsert(obj=schema.IPAddressPool(namespace=NS, name=name, addresses=tuple(addresses), **kw))


def svc(name: str, ns: str = "default", cips=("10.96.0.1",), ann=None, port=80, **kw) -> schema.K8sUpsert:
    kw.setdefault("type", "LoadBalancer")
    return schema.K8sUpsert(obj=schema.Service(
        namespace=ns, name=name, cluster_ips=cips, annotations=tuple(sorted((ann or {}).items())),
        ports=(schema.ServicePort(port=port),), **kw))


def verdicts(out: dict) -> list[tuple[str, str]]:
    return [(p["pool"], p["verdict"]) for p in out["allocation"]["pools"]]


def test_pending_service_lists_every_pool_and_why() -> None:
    sa = schema.ServiceAllocation(priority=1, namespaces=("team",))
    st = fold.fold([
        pool("full", "10.0.0.0/32"), pool("v6only", "2001:db8::/126"), pool("teams", "10.0.4.0/30", service_allocation=sa),
        pool("manual", "10.0.9.0/30", auto_assign=False), svc("holder"), svc("waiting"),
    ], statemod.new())
    out = explain.explain(st, "default/waiting")
    assert out is not None and out["handled"]
    a = out["allocation"]
    assert a["ingress"] == [] and a["reason"] == "noAvailableIPs"
    assert verdicts(out) == [
        ("full", "exhausted"), ("v6only", "familyMissing"), ("manual", "autoAssignDisabled"),
        ("teams", "namespaceNotAllowed"),
    ]
    assert a["pools"][0]["detail"] == "1 of 1 IPv4 addresses in use"
    assert a["pools"][3]["detail"] == "serviceAllocation allows namespaces ['team']"
    assert a["events"][-1]["reason"] == "AllocationFailed"


def test_sharing_conflict_names_the_other_service_and_port() -> None:
    k = {"metallb.io/allow-shared-ip": "k"}
    st = fold.fold([pool("p", "10.0.0.0/32"), svc("a", ns="web", ann=k, port=80), svc("b", ann=k, port=80)],
                   statemod.new())
    out = explain.explain(st, "default/b")
    row = out["allocation"]["pools"][0]
    assert row["verdict"] == "sharingConflict"
    assert row["detail"] == 'port TCP/80 is already in use on "10.0.0.0"'
    st2 = fold.fold([pool("p", "10.0.0.0/32"), svc("a", ns="web", ann=k), svc("b", ann={"metallb.io/allow-shared-ip": "z"})],
                    statemod.new())
    assert "address also in use by web/a" in explain.explain(st2, "default/b")["allocation"]["pools"][0]["detail"]


def test_assigned_service_shows_selected_and_not_tried() -> None:
    st = fold.fold([pool("a", "10.0.0.0/30"), pool("b", "10.0.1.0/30"), svc("x")], statemod.new())
    out = explain.explain(st, "default/x")
    assert verdicts(out) == [("a", "selected"), ("b", "notTried")]
    assert out["allocation"]["pools"][0]["detail"] == "holds 10.0.0.0"


def test_requested_ip_and_annotation_views() -> None:
    st = fold.fold([pool("a", "10.0.0.0/30"), pool("b", "10.0.1.0/30"),
                    svc("x", ann={"metallb.io/address-pool": "b"}), svc("y", load_balancer_ip="10.0.0.3")],
                   statemod.new())
    assert verdicts(explain.explain(st, "default/x")) == [("b", "selected"), ("a", "notRequested")]
    out = explain.explain(st, "default/y")
    assert out["allocation"]["requested"] == ["10.0.0.3"]
    assert verdicts(out) == [("a", "selected"), ("b", "notRequested")]


def test_not_handled_and_unknown() -> None:
    st = fold.fold([pool("a", "10.0.0.0/30"), svc("c", type="ClusterIP"), svc("o", load_balancer_class="x")],
                   statemod.new())
    assert explain.explain(st, "default/c")["not_handled"] == "type is ClusterIP, not LoadBalancer"
    assert "loadBalancerClass 'x' is not handled" in explain.explain(st, "default/o")["not_handled"]
    assert explain.explain(st, "default/none") is None


def test_sections_are_extensible() -> None:
    st = fold.fold([pool("a", "10.0.0.0/30"), svc("x")], statemod.new())
    explain.SECTIONS["zz-test"] = lambda state, key, s: {"hello": key}
    try:
        assert explain.explain(st, "default/x")["zz-test"] == {"hello": "default/x"}
    finally:
        del explain.SECTIONS["zz-test"]


def _log(tmp_path: Path) -> Path:
    p = tmp_path / "log.jsonl"
    events = [pool("p", "192.168.1.0/32"), svc("web"), svc("api")]
    p.write_bytes(b"".join(codec.encode_json(e) + b"\n" for e in events))
    return p


def test_cli_json_and_table(tmp_path: Path) -> None:
    log = _log(tmp_path)
    res = runner.invoke(app, ["explain", "default/api", "--log", str(log), "--output", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["allocation"]["reason"] == "noAvailableIPs"
    assert out["allocation"]["pools"] == [
        {"pool": "p", "group": "fallback", "priority": 0, "verdict": "exhausted", "detail": "1 of 1 IPv4 addresses in use",
         "status": {"assignedIPv4": 1, "availableIPv4": 0, "assignedIPv6": 0, "availableIPv6": 0}}
    ]
    res = runner.invoke(app, ["explain", "web", "--log", str(log)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "default/web: 192.168.1.0 from pool p" in res.stdout and "selected" in res.stdout


def test_cli_errors_exit_2_without_traceback(tmp_path: Path) -> None:
    log = _log(tmp_path)
    res = runner.invoke(app, ["explain", "default/nope", "--log", str(log)])
    assert res.exit_code == 2 and "service default/nope is not in the log" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(app, ["explain", "x", "--log", str(tmp_path / "missing.jsonl")])
    assert res.exit_code == 2 and "missing.jsonl" in res.output
    res = runner.invoke(app, ["explain", "x", "--log", str(log), "--output", "xml"])
    assert res.exit_code == 2
