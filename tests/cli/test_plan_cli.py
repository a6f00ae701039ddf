"""``streamlb plan`` and ``streamlb simulate`` as users see them: JSON shape, ordering, what-if answers, errors."""

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

BGP = """\
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bgp-prod, namespace: metallb-system}
spec:
  ipAddressPools: [production]
  localPref: 100
  communities: [64512:100]
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: router1, namespace: metallb-system}
spec: {myASN: 64512, peerASN: 64512, peerAddress: 10.0.0.254}
"""


@pytest.fixture
def bgp_file(tmp_path: Path) -> Path:
    p = tmp_path / "bgp.yaml"
    p.write_text(BGP)
    return p


def _json(args: list[str]) -> dict:
    res = runner.invoke(app, [*args, "--output", "json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _replay(*files: Path) -> dict:
    res = runner.invoke(app, ["replay", *map(str, files), "--output", "json"])
    assert res.exit_code == 0
    return json.loads(res.stdout)


def test_plan_from_nothing_announces_what_replay_says_the_node_owns(bgp_file: Path) -> None:
    out = _json(["plan", "--node", "node-b", "--log", str(EXAMPLE), "--log", str(bgp_file)])
    rep = _replay(EXAMPLE, bgp_file)
    owned = sorted(ip for s in rep["services"].values() for ip, v in s["l2"].items() if v["node"] == "node-b")
    assert sorted(out["plan"]["l2"]) == owned and owned
    assert [e["ip"] for e in out["effects"] if e["kind"] == "l2.announce"] == ["192.168.10.0", "192.168.10.1",
                                                                              "2001:db8:10::"]
    adv = [(e["peer"], e["prefix"], e["local_pref"], e["communities"]) for e in out["effects"]
           if e["kind"] == "bgp.advertise"]
    assert adv == [(a["peer"], a["prefix"], a["local_pref"], a["communities"]) for a in
                   (dict(x, peer=p) for p, xs in rep["bgp"]["node-b"].items() for x in xs)]
    v4 = next(e for e in out["effects"] if e["kind"] == "l2.announce")
    assert v4["garp"] == {"offsets_ms": [0, 1100, 2200, 3300, 4400], "frames": ["arp-request", "arp-reply"]}
    assert all(e["kind"] != "l2.withdraw" and e["kind"] != "bgp.withdraw" for e in out["effects"])


def test_plan_since_shows_withdrawals_before_announcements(tmp_path: Path, bgp_file: Path) -> None:
    down = tmp_path / "down.jsonl"
    down.write_text('{"kind": "speaker.down", "node": "node-b"}\n')
    n_records = 15 + 2  # example YAML documents + bgp.yaml documents
    out = _json(["plan", "--node", "node-a", "--log", str(EXAMPLE), "--log", str(bgp_file), "--log", str(down),
                 "--since", str(n_records)])
    kinds = [e["kind"] for e in out["effects"]]
    assert kinds.count("l2.announce") == 3  # node-a takes over node-b's three IPs
    assert "l2.withdraw" not in kinds
    gone = _json(["plan", "--node", "node-b", "--log", str(EXAMPLE), "--log", str(bgp_file), "--log", str(down),
                  "--since", str(n_records)])
    kinds = [e["kind"] for e in gone["effects"]]
    assert kinds == ["bgp.withdraw"] * 3 + ["l2.withdraw"] * 3
    assert gone["plan"] == {"l2": {}, "bgp": []}


def test_plan_table_output() -> None:
    res = runner.invoke(app, ["plan", "--node", "node-a", "--log", str(EXAMPLE)], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "l2.announce" in res.stdout and "192.168.20.10" in res.stdout


def test_simulate_fail_node_moves_its_ips_and_withdraws_its_prefixes(bgp_file: Path) -> None:
    out = _json(["simulate", "--log", str(EXAMPLE), "--log", str(bgp_file), "--fail-node", "node-b"])
    assert out["scenario"] == {"fail_nodes": ["node-b"], "drain_pools": []}
    moves = {(m["service"], m["ip"]): (m["from"], m["to"]) for m in out["l2_moves"]}
    assert moves == {
        ("default/dns", "192.168.10.1"): ("node-b", "node-a"),
        ("default/dns", "2001:db8:10::"): ("node-b", "node-a"),
        ("default/web", "192.168.10.0"): ("node-b", "node-a"),
    }
    assert {(w["node"], w["peer"]) for w in out["bgp_withdrawn"]} == {("node-b", "router1")}
    assert len(out["bgp_withdrawn"]) == 3 and out["bgp_advertised"] == []
    assert out["services_losing_service"] == []


def test_simulate_losing_service_names_the_reason() -> None:
    out = _json(["simulate", "--log", str(EXAMPLE), "--fail-node", "node-a"])
    assert {"service": "staging/api", "reason": "noLocalEndpoints"} in out["services_losing_service"]
    out = _json(["simulate", "--log", str(EXAMPLE), "--fail-node", "node-a", "--fail-node", "node-b"])
    assert sorted(s["service"] for s in out["services_losing_service"]) == ["default/dns", "default/web",
                                                                            "staging/api"]


def test_simulate_drain_pool_shows_ip_changes() -> None:
    out = _json(["simulate", "--log", str(EXAMPLE), "--drain-pool", "staging"])
    change = next(c for c in out["ip_changes"] if c["service"] == "staging/api")
    assert change["before"] == ["192.168.20.10"] and change["after"] and change["after"] != change["before"]


def test_simulate_table_output(bgp_file: Path) -> None:
    res = runner.invoke(app, ["simulate", "--log", str(EXAMPLE), "--log", str(bgp_file), "--fail-node", "node-b"],
                        env={"COLUMNS": "200"})
    assert res.exit_code == 0
    assert "L2 moves (3)" in res.stdout and "BGP withdrawn (3)" in res.stdout and "router1" in res.stdout


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)


@pytest.mark.parametrize("command", [["plan", "--node", "node-a"], ["simulate", "--fail-node", "node-a"]])
def test_bad_record_names_file_and_line_and_exits_2(tmp_path: Path, command: list[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "speaker.up", "node": "node-a"}\n{"kind": "speaker.up", "node": \n')
    proc = _run([*command, "--log", str(EXAMPLE), "--log", str(bad)])
    err = proc.stderr.decode()
    assert proc.returncode == 2 and proc.stdout == b""
    assert f"{bad}:2:" in err and "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize("command", [["plan", "--node", "node-a"], ["simulate", "--fail-node", "node-a"]])
def test_unreadable_file_exits_2(tmp_path: Path, command: list[str]) -> None:
    proc = _run([*command, "--log", str(tmp_path / "missing.yaml")])
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "missing.yaml" in err and "cannot read" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plan", "--node", "nope", "--log", str(EXAMPLE)], "unknown node 'nope' (nodes in the log: node-a, node-b, node-c)"),
        (["simulate", "--log", str(EXAMPLE), "--fail-node", "nope"], "unknown node 'nope'"),
        (["simulate", "--log", str(EXAMPLE), "--drain-pool", "nope"], "unknown pool 'nope' (pools in the log: production, staging)"),
        (["simulate", "--log", str(EXAMPLE)], "nothing to simulate"),
        (["plan", "--node", "node-a", "--log", str(EXAMPLE), "--output", "yaml"], "--output must be json or table"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args: list[str], message: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert message in res.stderr and res.stderr.count("\n") == 1


def test_help() -> None:
    for cmd in ("plan", "simulate"):
        res = runner.invoke(app, [cmd, "--help"], env={"COLUMNS": "200"})
        assert res.exit_code == 0 and "--log" in res.stdout


def test_replay_plan_and_simulate_are_byte_identical_across_hash_seeds() -> None:
    golden = ROOT / "tests" / "golden" / "logs" / "announce-plan-v1.evlog"
    commands = [
        ["replay", str(golden), "--output", "json"],
        ["plan", "--node", "w1", "--log", str(golden), "--output", "json"],
        ["simulate", "--log", str(golden), "--fail-node", "w1", "--drain-pool", "internal", "--output", "json"],
    ]
    for args in commands:
        outs = []
        for seed in ("0", "4242"):
            proc = subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, cwd=ROOT,
                                  env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": seed}, timeout=120)
            assert proc.returncode == 0, proc.stderr.decode()
            outs.append(proc.stdout)
        assert outs[0] == outs[1] and len(outs[0]) > 200, args
    sim = json.loads(outs[0])
    assert sim["bgp_withdrawn"] and sim["l2_moves"]  # w1 advertised and owned IPs in that log


def test_explain_shows_l2_and_bgp_sections_with_every_node_accounted_for() -> None:
    golden = ROOT / "tests" / "golden" / "logs" / "announce-plan-v1.evlog"
    front = _json(["explain", "shop/front", "--log", str(golden)])
    nodes = {"w1", "w2", "w3", "w4", "w5"}
    for ip, entry in front["l2"].items():
        assert entry["owner"] == "w2" and entry["nodes"]["announces"] == ["w2"]
        assert {n for group in entry["nodes"].values() for n in group} == nodes
        assert entry["nodes"]["speakerDown"] == ["w3"] and entry["nodes"]["nodeNetworkUnavailable"] == ["w5"]
    assert sorted(front["bgp"]["announcing"]) == ["w1", "w2"]
    assert sorted(front["bgp"]["announcing"]["w1"]) == ["edge", "tor"]  # only w1 is selected by the edge peer
    assert front["bgp"]["not_announcing"] == {"nodeLabeledExcludeBalancers": ["w4"],
                                              "nodeNetworkUnavailable": ["w5"], "speakerDown": ["w3"]}
    gold = _json(["explain", "shop/gold", "--log", str(golden)])
    assert gold["bgp"] == {"announcing": {}, "not_announcing": {"conflictingAdvertisements": sorted(nodes)}}
    queue = _json(["explain", "shop/queue", "--log", str(golden)])
    assert queue["bgp"]["not_announcing"] == {"notOwner": sorted(nodes)}  # its pool has no BGPAdvertisement
