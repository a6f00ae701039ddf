"""``streamlb doctor``'s checks on hand-made evidence: each finding names its code, evidence and a fix; a healthy
installation has none; what cannot be checked is "unknown", not a finding."""

from __future__ import annotations

from pathlib import Path

from events.position import Position
from reconciler.runtime import doctor as doc
from tests.unit.runtime.test_l2_subnet_stories import cluster, status

NOW = 1_800_000_000.0


def pos(seconds_ago: float, seq: int = 0) -> Position:
    return Position(int((NOW - seconds_ago) * 1000), seq)


def healthy(tmp: Path, **kw) -> doc.Evidence:
    _, st = cluster(tmp, "[10.89.0.50-10.89.0.59]", "{}")
    s = status("node-a", eth0=["10.89.0.1/24"])
    s.update(position=str(pos(5)), written_at=doc.iso(NOW - 1), conflict_probe=True, conflicts=[],
             peers={"router": {"address": "10.89.0.254", "state": "Established", "since": doc.iso(NOW - 100)}})
    ev = doc.Evidence(now=NOW, state=st, heartbeats={"node-a"}, statuses={"node-a": s}, leader="r1", head=pos(5),
                      applied_pos=pos(5), leader_pos=pos(5), snapshot_pos=pos(5), first_event=pos(500),
                      speaker_next={"node-a": None}, acl={"streamlb-speaker": [("XADD x", False, "no")]})
    for k, v in kw.items():
        setattr(ev, k, v)
    return ev


def run(ev: doc.Evidence) -> dict[str, doc.CheckResult]:
    return {r.code: r for r in doc.run_checks(ev)}


def codes(ev: doc.Evidence) -> list[str]:
    return sorted(f.code for r in doc.run_checks(ev) for f in r.findings)


def test_healthy_installation_has_no_finding_and_every_check_is_reported(tmp_path: Path) -> None:
    res = doc.run_checks(healthy(tmp_path))
    assert [r.code for r in res] == list(doc.TITLES)
    rep = doc.report(res)
    assert rep["healthy"] and rep["findings"] == 0
    assert {c["code"]: c["status"] for c in rep["checks"]}[doc.BFD_SESSION_DOWN] == "ok"


def test_speaker_without_heartbeat_whether_the_fold_knows_it_or_not(tmp_path: Path) -> None:
    ev = healthy(tmp_path, heartbeats=set())
    (f,) = run(ev)[doc.SPEAKER_NO_HEARTBEAT].findings
    assert f.evidence["node"] == "node-a" and f.evidence["fold"] == "up" and f.evidence["status_key"]
    assert f.evidence["last_status"].startswith(doc.iso(NOW - 1))
    assert "node-a" in f.fix
    ev.state.speakers_down.add("node-a")  # a replica noticed: still a node without its speaker
    ev.statuses = {}
    (f,) = run(ev)[doc.SPEAKER_NO_HEARTBEAT].findings
    assert f.evidence["fold"] == "down" and f.evidence["last_status"] == "unknown"
    # a status key of a node the fold does not know (yet) counts as well
    ev = healthy(tmp_path, heartbeats={"node-a"})
    ev.statuses["node-z"] = {"node": "node-z", "written_at": doc.iso(NOW - 30)}
    assert [f.evidence["node"] for f in run(ev)[doc.SPEAKER_NO_HEARTBEAT].findings] == ["node-z"]


def test_bgp_and_bfd_sessions_down_with_since(tmp_path: Path) -> None:
    ev = healthy(tmp_path)
    ev.statuses["node-a"]["peers"]["router"].update(state="Active", since=doc.iso(NOW - 40), last_error="refused")
    ev.statuses["node-a"]["bfd"] = {"router": {"state": "Down", "peer": "10.89.0.254", "since": doc.iso(NOW - 41),
                                               "diagnostic": "control_detection_time_expired"}}
    r = run(ev)
    (b,) = r[doc.BGP_SESSION_DOWN].findings
    assert b.evidence == {"node": "node-a", "peer": "router", "address": "10.89.0.254", "state": "Active",
                          "since": doc.iso(NOW - 40), "last_error": "refused"}
    (f,) = r[doc.BFD_SESSION_DOWN].findings
    assert f.evidence == {"node": "node-a", "peer": "router", "address": "10.89.0.254", "state": "Down",
                          "diagnostic": "control_detection_time_expired", "since": doc.iso(NOW - 41)}
    # sessions of a speaker without heartbeat are not judged (its status is stale); the heartbeat finding covers it
    ev.heartbeats = set()
    assert not run(ev)[doc.BGP_SESSION_DOWN].findings


def test_invalid_configuration(tmp_path: Path) -> None:
    _, st = cluster(tmp_path, "[10.89.0.0/24, 10.89.0.128/25]", "{}")
    assert not st.config_valid
    (f,) = run(healthy(tmp_path, state=st))[doc.CONFIG_INVALID].findings
    assert "overlaps" in f.message and f.evidence["errors"] == st.config_errors


def test_pool_at_ninety_percent(tmp_path: Path) -> None:
    _, st = cluster(tmp_path, "[10.89.0.50/32]", "{}")  # one address, one Service: 100 %
    (f,) = run(healthy(tmp_path, state=st))[doc.POOL_NEARLY_EXHAUSTED].findings
    assert f.evidence == {"pool": "pool", "family": "IPv4", "assigned": 1, "capacity": 1}
    assert not doc.run_checks(healthy(tmp_path, state=st), doc.Thresholds(pool_use=1.01))[4].findings


def test_l2_ip_outside_subnet_and_unknown_without_data(tmp_path: Path) -> None:
    _, st = cluster(tmp_path, "[192.0.2.50/32]", "{}")
    ev = healthy(tmp_path, state=st)
    (f,) = run(ev)[doc.L2_IP_OUTSIDE_SUBNET].findings
    assert f.evidence["ip"] == "192.0.2.50" and f.evidence["node"] == "node-a"
    ev.statuses["node-a"]["interfaces_known"] = False
    r = run(ev)[doc.L2_IP_OUTSIDE_SUBNET]
    assert r.status == "ok" and not r.findings and "192.0.2.50 (node-a)" in r.note


def test_address_conflict_and_probing_off(tmp_path: Path) -> None:
    ev = healthy(tmp_path)
    ev.statuses["node-a"]["conflicts"] = [{"ip": "10.89.0.50", "mac": "02:00:00:00:00:99", "interface": "eth0",
                                           "first_seen": doc.iso(NOW - 9), "last_seen": doc.iso(NOW - 2)}]
    (f,) = run(ev)[doc.ADDRESS_CONFLICT].findings
    assert f.evidence["other_mac"] == "02:00:00:00:00:99" and f.evidence["since"] == doc.iso(NOW - 9)
    ev = healthy(tmp_path)
    ev.statuses["node-a"]["conflict_probe"] = False
    assert run(ev)[doc.ADDRESS_CONFLICT].status == "unknown"
    ev = healthy(tmp_path)
    ev.statuses["node-a"]["conflict_probe_error"] = "Operation not permitted"
    r = run(ev)[doc.ADDRESS_CONFLICT]
    assert r.status == "unknown" and "node-a: Operation not permitted" in r.note


def test_leader_lag_snapshot_and_deadletters(tmp_path: Path) -> None:
    ev = healthy(tmp_path, leader=None)
    assert run(ev)[doc.LEADER_MISSING].findings
    ev = healthy(tmp_path, leader_next=pos(45))
    (f,) = run(ev)[doc.REPLICA_LAGGING].findings
    assert f.evidence["replica"] == "r1" and f.evidence["since"] == doc.iso(NOW - 45)
    ev = healthy(tmp_path, speaker_next={"node-a": pos(31)})
    (f,) = run(ev)[doc.REPLICA_LAGGING].findings
    assert f.evidence["node"] == "node-a"
    assert not run(healthy(tmp_path, speaker_next={"node-a": pos(3)}))[doc.REPLICA_LAGGING].findings
    ev = healthy(tmp_path, snapshot_next=pos(700))
    assert run(ev)[doc.SNAPSHOT_STALE].findings
    ev = healthy(tmp_path, snapshot_pos=None, first_event=pos(900))
    assert "no snapshot" in run(ev)[doc.SNAPSHOT_STALE].findings[0].message
    ev = healthy(tmp_path, deadletters=2, deadletter_newest=(str(pos(60)), "bad msgpack"))
    (f,) = run(ev)[doc.DEAD_LETTERS].findings
    assert f.evidence["count"] == 2 and f.evidence["reason"] == "bad msgpack"


def test_rights_beyond_role_and_cannot_check(tmp_path: Path) -> None:
    ev = healthy(tmp_path, acl={"streamlb-speaker": [("XADD streamlb:{c}:events * e x v 1", True, ""),
                                                     ("FLUSHALL", False, "no")]})
    (f,) = run(ev)[doc.EXCESS_RIGHTS].findings
    assert f.evidence == {"user": "streamlb-speaker", "command": "XADD streamlb:{c}:events * e x v 1"}
    ev = healthy(tmp_path, acl=None, acl_note="cannot check: NOPERM")
    r = run(ev)[doc.EXCESS_RIGHTS]
    assert r.status == "unknown" and r.note == "cannot check: NOPERM" and doc.report([r])["healthy"]
