"""``streamlb doctor`` and the speaker status keys against a real redis-server: status key round trip, exit codes
(2 unreachable, 1 findings), and the rights-beyond-role check with ``ACL DRYRUN`` on a server with an aclfile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from events import inputs, schema, stream
from events.position import Position
from tests.redis_server import RedisServer, free_port, redis_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
C = "doc"

CONFIG = """
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: tiny, namespace: metallb-system}
spec: {addresses: [192.0.2.50/32]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: metallb-system}
spec: {}
---
apiVersion: v1
kind: Node
metadata: {name: node-a, labels: {kubernetes.io/hostname: node-a}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {type: LoadBalancer, clusterIP: 10.96.0.10, clusterIPs: [10.96.0.10], ports: [{port: 80, protocol: TCP}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-x, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: [10.244.0.9], conditions: {ready: true}, nodeName: node-a}]
"""


def doctor(url: str, *args: str, cluster: str = C) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "reconciler", "doctor", "--redis-url", url, "--cluster", cluster,
                           *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


def events(tmp: Path, text: str) -> list[schema.Event]:
    p = tmp / "in.yaml"
    p.write_text(text)
    return [o.event for rec in inputs.read_file(p) for o in rec.outcomes if isinstance(o, inputs.Accepted)]


def test_status_keys_round_trip_expire_and_skip_garbage(redis_server) -> None:  # noqa: F811
    lg = stream.StreamLog.from_url(redis_server.url, C)
    lg.publish_status("node-a", json.dumps({"node": "node-a", "interfaces": []}).encode(), 60_000)
    lg.publish_status("node-b", b"{not json", 60_000)
    lg.publish_status("node-c", b"{}", 150)
    assert lg.client.pttl("streamlb:{doc}:status:node-a") > 50_000
    time.sleep(0.3)
    assert lg.speaker_statuses() == {"node-a": {"node": "node-a", "interfaces": []}}
    other = stream.StreamLog.from_url(redis_server.url, "other")
    assert other.speaker_statuses() == {}
    lg.clear_status("node-a")
    assert lg.speaker_statuses() == {}


def test_unreachable_redis_exits_2_with_one_line() -> None:
    r = doctor(f"redis://127.0.0.1:{free_port()}/0")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "cannot reach Redis" in r.stderr and "Traceback" not in r.stderr


def test_findings_exit_1_with_codes_evidence_and_fixes(redis_server, tmp_path: Path) -> None:  # noqa: F811
    lg = stream.StreamLog.from_url(redis_server.url, C)
    lg.append(events(tmp_path, CONFIG))
    st = {"node": "node-a", "position": str(lg.last_id()), "interfaces_known": True, "conflict_probe": True,
          "interfaces": [{"name": "eth0", "mac": "02:00:00:00:00:01", "addresses": ["10.89.0.1/24"]}],
          "conflicts": [], "peers": {}, "written_at": "2026-01-01T00:00:00Z"}
    lg.publish_status("node-a", json.dumps(st).encode(), 60_000)
    lg.heartbeat("node-a", 60_000)
    lg.deadletter(Position(1, 0), "entry has no event field 'e'", b"")
    lg.deadletter(Position(2, 0), "bad msgpack", b"\x00")
    r = doctor(redis_server.url, "-o", "json", "--no-acl")
    assert r.returncode == 1, r.stderr
    rep = json.loads(r.stdout)
    found = {f["code"]: f for c in rep["checks"] for f in c["findings"]}
    # 192.0.2.50 is the whole pool (100 %) and outside node-a's 10.89.0.0/24; no `streamlb run` holds the lock
    assert set(found) == {"POOL_NEARLY_EXHAUSTED", "L2_IP_OUTSIDE_SUBNET", "LEADER_MISSING", "DEAD_LETTERS"}
    assert (found["DEAD_LETTERS"]["evidence"]["count"], found["DEAD_LETTERS"]["evidence"]["newest"],
            found["DEAD_LETTERS"]["evidence"]["reason"]) == (2, "2-0", "bad msgpack")
    assert found["L2_IP_OUTSIDE_SUBNET"]["evidence"]["ip"] == "192.0.2.50"
    assert all(f["fix"] for f in found.values())
    statuses = {c["code"]: c["status"] for c in rep["checks"]}
    assert statuses["EXCESS_RIGHTS"] == "unknown"
    r = doctor(redis_server.url, "--no-acl")  # the table names the same codes
    assert r.returncode == 1 and "L2_IP_OUTSIDE_SUBNET" in r.stdout and "fix:" in r.stdout
    # explain on the live cluster: events from the stream, interfaces from the status key
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "reconciler", "explain", "web", "--redis-url", redis_server.url,
                        "--cluster", C, "-o", "json"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    v = json.loads(r.stdout)["l2_subnet"]["192.0.2.50"]
    assert v["verdict"] == "no" and v["node"] == "node-a" and v["subnets"] == ["eth0:10.89.0.0/24"]


ACL = """user default on nopass ~* &* +@all
user streamlb-producer on >p ~streamlb:{doc}:events +xadd
user streamlb-reconciler on >r ~streamlb:{doc}:* +@read +xadd +set +hset +del +eval +pexpire +xtrim +ping
user streamlb-speaker on >s ~streamlb:{doc}:* &* +@all
user watcher on >w ~* +@read +ping +info
"""


def test_rights_beyond_role_found_with_acl_dryrun_and_cannot_check(tmp_path: Path) -> None:
    (tmp_path / "users.acl").write_text(ACL)
    srv = RedisServer(tmp_path / "r", extra=["--aclfile", str(tmp_path / "users.acl")]).start()
    try:
        r = doctor(srv.url, "-o", "json")
        rep = json.loads(r.stdout)
        rights = next(c for c in rep["checks"] if c["code"] == "EXCESS_RIGHTS")
        assert rights["status"] == "finding"
        got = {(f["evidence"]["user"], f["evidence"]["command"].split()[0]) for f in rights["findings"]}
        # the speaker was given everything; the reconciler may write any key of the cluster (heartbeats too);
        # the default user is on, without password, and can append to the log
        assert ("streamlb-speaker", "XADD") in got and ("streamlb-speaker", "FLUSHALL") in got
        assert ("streamlb-reconciler", "SET") in got and ("default", "XADD") in got
        assert not any(u == "streamlb-producer" for u, _ in got)
        lg = stream.StreamLog.from_url(srv.url, C)
        assert lg.length() == 0  # DRYRUN executed nothing
        # a connection that may not run ACL commands cannot check: said so, not a finding
        url = f"redis://watcher:w@127.0.0.1:{srv.port}/0"
        r = doctor(url, "-o", "json")
        rights = next(c for c in json.loads(r.stdout)["checks"] if c["code"] == "EXCESS_RIGHTS")
        assert rights["status"] == "unknown" and rights["note"].startswith("cannot check")
    finally:
        srv.stop()


GOOD_ACL = """user default on nopass -@all +ping
user doctor on >d ~* &* +@all
user streamlb-producer on >p -@all +ping +xadd ~streamlb:{doc}:events
user streamlb-reconciler on >r -@all +ping +xadd +xrange +xread +hset +set +get +del +eval +pexpire ~streamlb:{doc}:events ~streamlb:{doc}:snapshot ~streamlb:{doc}:deadletter ~streamlb:{doc}:decisions ~streamlb:{doc}:leader %R~streamlb:{doc}:speaker:* %R~streamlb:{doc}:status:*
user streamlb-speaker on >s -@all +ping +xrange +xread +hgetall +get +set +del %R~streamlb:{doc}:events %R~streamlb:{doc}:snapshot %R~streamlb:{doc}:decisions ~streamlb:{doc}:speaker:* ~streamlb:{doc}:status:*
"""


def test_least_privilege_users_pass(tmp_path: Path) -> None:
    (tmp_path / "users.acl").write_text(GOOD_ACL)
    srv = RedisServer(tmp_path / "r", extra=["--aclfile", str(tmp_path / "users.acl")]).start()
    try:
        r = doctor(f"redis://doctor:d@127.0.0.1:{srv.port}/0", "-o", "json")
        rights = next(c for c in json.loads(r.stdout)["checks"] if c["code"] == "EXCESS_RIGHTS")
        assert rights["status"] == "ok" and rights["findings"] == [], rights
    finally:
        srv.stop()


def test_no_role_users_means_cannot_check(redis_server) -> None:  # noqa: F811
    r = doctor(redis_server.url, "-o", "json")
    rights = next(c for c in json.loads(r.stdout)["checks"] if c["code"] == "EXCESS_RIGHTS")
    assert rights["status"] == "unknown" and "do not exist" in rights["note"]
