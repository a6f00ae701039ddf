"""``streamlb replay`` as users and external tools see it: the JSON contract, exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconciler.runtime.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "cluster.yaml"
runner = CliRunner()

TOP_KEYS = ["bgp", "config", "events_applied", "ignored", "rejected", "services", "state_hash"]
SERVICE_KEYS = ["events", "ingress", "l2", "pool", "reason"]


def _json(args: list[str]) -> dict:
    res = runner.invoke(app, ["replay", *args, "--output", "json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_json_contract_shape_on_the_example() -> None:
    out = _json([str(EXAMPLE)])
    assert sorted(out) == TOP_KEYS
    assert out["events_applied"] == 14 and out["ignored"] == {"v1/ConfigMap": 1} and out["rejected"] == []
    assert out["config"] == {"valid": True, "errors": []}
    assert len(out["state_hash"]) == 64 and int(out["state_hash"], 16) >= 0
    assert sorted(out["services"]) == ["default/dns", "default/web", "staging/api"]  # ClusterIP service left out
    for svc in out["services"].values():
        assert sorted(svc) == SERVICE_KEYS
        for ev in svc["events"]:
            assert sorted(ev) == ["message", "reason", "type"]
        for ip, l2 in svc["l2"].items():
            assert sorted(l2) == ["node", "reason"] and ip in svc["ingress"]
    web = out["services"]["default/web"]
    assert web["ingress"] == ["192.168.10.0"] and web["pool"] == "production" and web["reason"] is None
    assert web["events"] == [{"type": "Normal", "reason": "IPAllocated", "message": 'Assigned IP ["192.168.10.0"]'}]
    api = out["services"]["staging/api"]
    assert api["pool"] == "staging"  # the namespace-pinned pool with a priority
    assert api["l2"]["192.168.20.10"]["node"] == "node-a"  # ETP Local: only the node with the endpoint


def test_output_keys_are_sorted_and_stable() -> None:
    res = runner.invoke(app, ["replay", str(EXAMPLE), "--output", "json"])
    text = res.stdout
    obj = json.loads(text)
    assert text == json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_at_counts_records_across_files(tmp_path: Path) -> None:
    extra = tmp_path / "more.jsonl"
    extra.write_text('{"kind": "speaker.down", "node": "node-a"}\nnot json\n')
    full = _json([str(EXAMPLE), str(extra)])
    assert full["rejected"] == [{"file": str(extra), "record": 2, "reason": full["rejected"][0]["reason"]}]
    assert full["rejected"][0]["reason"].startswith("invalid JSON")
    assert full["events_applied"] == 15
    assert _json([str(EXAMPLE), "--at", "3"])["events_applied"] == 3
    part = _json([str(EXAMPLE), str(extra), "--at", "16"])  # 15 YAML documents + 1 line
    assert part["events_applied"] == 15 and part["rejected"] == []


def test_table_output_names_services() -> None:
    res = runner.invoke(app, ["replay", str(EXAMPLE)], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    assert "default/web" in res.stdout and "192.168.10.0" in res.stdout and "configuration: valid" in res.stdout


@pytest.mark.parametrize(
    "content, message",
    [(None, "cannot read"), (b"\x00\x01binary", "cannot detect the format"), (b"", "empty file")],
)
def test_unreadable_or_undetectable_file_exits_2_without_traceback(tmp_path: Path, content, message) -> None:
    path = tmp_path / "input.dat"
    if content is not None:
        path.write_bytes(content)
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler", "replay", str(EXAMPLE), str(path), "--output", "json"],
        capture_output=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120,
    )
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert str(path) in err and message in err and "Traceback" not in err
    assert err.count("\n") == 1
    assert proc.stdout == b""


def test_malformed_records_never_crash(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    lines = [
        '{"type": "ADDED", "object": {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "d"}, "spec": {"ports": [{"port": "x"}]}}}',
        '{"kind": "k8s.upsert", "obj": {"kind": "Service", "name": "s", "cluster_ips": ["1.2.3"]}}',
        '{"kind": "k8s.nope"}',
        '[]',
        '{"type": "ADDED", "object": {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "p", "namespace": "metallb-system"}, "spec": {"addresses": ["notacidr"]}}}',
        '{"truncated": ',
    ]
    path.write_text("\n".join(lines) + "\n")
    out = _json([str(path)])
    assert [r["record"] for r in out["rejected"]] == [1, 2, 3, 4, 6]
    assert all(r["file"] == str(path) and r["reason"] for r in out["rejected"])
    assert out["config"]["valid"] is False and "invalid CIDR 'notacidr'" in out["config"]["errors"][0]


def test_bad_option_value_exits_2() -> None:
    res = runner.invoke(app, ["replay", str(EXAMPLE), "--output", "yaml"])
    assert res.exit_code == 2


def test_help_lists_commands() -> None:
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0 and "replay" in res.stdout


def test_omit_bgp_leaves_out_only_that_key() -> None:
    bgp_log = ROOT / "tests" / "golden" / "logs" / "announce-plan-v1.evlog"
    full = _json([str(bgp_log)])
    assert full["bgp"], "the golden log must advertise something for this test to mean anything"
    res = runner.invoke(app, ["replay", str(bgp_log), "--output", "json", "--omit", "bgp"])
    assert res.exit_code == 0, res.output
    omitted = json.loads(res.stdout)
    assert sorted(omitted) == [k for k in TOP_KEYS if k != "bgp"]
    assert omitted == {k: v for k, v in full.items() if k != "bgp"}  # state_hash included


def test_omit_refuses_other_keys_without_traceback() -> None:
    res = runner.invoke(app, ["replay", str(EXAMPLE), "--output", "json", "--omit", "services"])
    assert res.exit_code != 0 and "Traceback" not in res.output and "--omit" in res.output
