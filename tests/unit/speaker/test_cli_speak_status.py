"""``streamlb status`` and ``streamlb speak`` argument errors, through the real CLI (typer runner)."""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client import generate_latest
from typer.testing import CliRunner

from reconciler.runtime.cli.app import app
from reconciler.runtime.daemons.speaker import SpeakerMetrics

STATUS = {
    "node": "node-a", "position": "1-0", "applied": 12, "skipped": 0, "log_up": True,
    "plan": {"l2": {}, "bgp": []},
    "l2": {"announced": ["10.0.0.10"], "interfaces": ["eth0"], "requests_received": 3, "responses_sent": 2,
           "gratuitous_sent": 10, "dropped": {}},
    "peers": {"router": {"address": "10.0.0.254", "state": "Established", "last_error": "", "advertised": 2,
                         "desired": 2, "counters": {"updates_out": 3, "notifications_out": 0,
                                                    "notifications_in": 1}}},
}


def test_status_table_and_json(tmp_path: Path) -> None:
    f = tmp_path / "s.json"
    f.write_text(json.dumps(STATUS))
    r = CliRunner().invoke(app, ["status", "--status-file", str(f)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "router" in r.output and "Established" in r.output and "10.0.0.254" in r.output
    assert "gratuitous 10" in r.output
    r = CliRunner().invoke(app, ["status", "--status-file", str(f), "-o", "json"])
    assert r.exit_code == 0 and json.loads(r.output) == STATUS


def test_status_table_shows_interfaces_and_conflicts(tmp_path: Path) -> None:
    f = tmp_path / "s.json"
    f.write_text(json.dumps({**STATUS, "interfaces": [
        {"name": "eth0", "mac": "02:00:00:00:00:01", "addresses": ["10.0.0.1/24", "2001:db8::1/64"]}],
        "conflicts": [{"ip": "10.0.0.10", "mac": "02:00:00:00:00:99", "interface": "eth0",
                       "first_seen": "2026-01-01T00:00:00Z", "last_seen": "2026-01-01T00:01:00Z"}]}))
    r = CliRunner().invoke(app, ["status", "--status-file", str(f)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "interface eth0 02:00:00:00:00:01: 10.0.0.1/24, 2001:db8::1/64" in r.output
    assert "CONFLICT 10.0.0.10: also answered by 02:00:00:00:00:99 on eth0" in r.output


def test_status_errors(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["status", "--status-file", str(tmp_path / "none.json")])
    assert r.exit_code == 1 and "no status file" in r.output and "Traceback" not in r.output
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = CliRunner().invoke(app, ["status", "--status-file", str(bad)])
    assert r.exit_code == 1 and "unreadable status" in r.output
    r = CliRunner().invoke(app, ["status", "--status-file", str(bad), "-o", "yaml"])
    assert r.exit_code == 2
    r = CliRunner().invoke(app, ["status"])
    assert r.exit_code == 2 and "--node" in r.output


def test_speak_rejects_missing_log_file(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["speak", "--node", "n", "--log", str(tmp_path / "missing.evlog"), "--no-l2",
                                 "--status-file", str(tmp_path / "s.json")])
    assert r.exit_code == 2 and "missing.evlog" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["speak", "--node", "n", "--log-format", "xml"])
    assert r.exit_code == 2


def test_metrics_names() -> None:
    m = SpeakerMetrics()
    m.bgp_up.labels("router").set(1)
    m.l2_gratuitous.set(10)
    text = generate_latest(m.registry).decode()
    assert 'metallb_bgp_session_up{peer="router"} 1.0' in text
    assert "metallb_layer2_gratuitous_sent 10.0" in text
    assert "streamlb_speaker_redis_up 0.0" in text


def test_status_table_shows_bfd_sessions(tmp_path: Path) -> None:
    import random

    from fastpath.bfd_session import BfdConfig, BfdSession

    s = BfdSession(BfdConfig(300_000, 300_000, 3), 0x11, 0.0, random.Random(0))
    bfd = s.status()
    bfd.update(peer="10.0.0.254", multihop=False, minimum_ttl=255, echo="unsupported", source_port=50000,
               ttl_dropped=2, send_errors=0, last_error="")
    f = tmp_path / "s.json"
    f.write_text(json.dumps({**STATUS, "bfd": {"router": bfd}}))
    r = CliRunner().invoke(app, ["status", "--status-file", str(f)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    row = next(line for line in r.output.splitlines() if "router" in line and "Down" in line)
    assert "10.0.0.254" in row and "unsupported" in row and "1000/300" in row


def test_status_table_shows_the_heartbeat(tmp_path: Path) -> None:
    f = tmp_path / "s.json"
    f.write_text(json.dumps({**STATUS, "heartbeat": {"interval_ms": 100, "ttl_ms": 600, "last_ok_age_s": 0.04,
                                                     "max_gap_s": 0.183, "failures": 2, "link_down": True}}))
    r = CliRunner().invoke(app, ["status", "--status-file", str(f)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "every 100 ms, TTL 600 ms" in r.output and "largest gap 0.183 s" in r.output
    assert "failures 2" in r.output and "LINKS DOWN" in r.output


def test_speak_rejects_an_interval_not_below_the_ttl(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["speak", "--node", "n", "--no-l2", "--no-bgp", "--status-file",
                                 str(tmp_path / "s.json"), "--heartbeat-interval-ms", "600",
                                 "--heartbeat-ttl-ms", "600"])
    assert r.exit_code != 0 and "must be below --heartbeat-ttl-ms" in r.output and "Traceback" not in r.output
