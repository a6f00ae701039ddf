"""Stories of the L2 subnet check (issue 15 item 2): an L2 IP is reachable only when one of its owner's announcing
interfaces has a subnet containing it. The owner and its interfaces come from the fold; the interfaces' addresses
only from the speakers' status — without it the answer is "unknown", never a guess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from events import inputs
from reconciler import fold, state as statemod
from reconciler.runtime import doctor

ROOT = Path(__file__).resolve().parents[3]


def cluster(tmp: Path, pools: str, l2ad: str, nodes=("node-a",), svc_families="[IPv4]") -> tuple[Path, object]:
    text = f"""
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: pool, namespace: metallb-system}}
spec: {{addresses: {pools}}}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: l2, namespace: metallb-system}}
spec: {l2ad}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10, "fd00:96::10"]
  ipFamilies: {svc_families}
  ipFamilyPolicy: {"PreferDualStack" if "IPv6" in svc_families and "IPv4" in svc_families else "SingleStack"}
  ports: [{{port: 80, protocol: TCP}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-x
  namespace: default
  labels: {{kubernetes.io/service-name: web}}
addressType: IPv4
endpoints:
  - addresses: [10.244.0.9]
    conditions: {{ready: true}}
    nodeName: {nodes[0]}
"""
    for n in nodes:
        text += f"---\napiVersion: v1\nkind: Node\nmetadata: {{name: {n}, labels: {{kubernetes.io/hostname: {n}}}}}\n"
    p = tmp / "cluster.yaml"
    p.write_text(text)
    st = statemod.new()
    for rec in inputs.read_file(p):
        for o in rec.outcomes:
            if isinstance(o, inputs.Accepted):
                fold.apply(st, o.event)
    return p, st


def status(node: str, **ifaces: list[str]) -> dict:
    return {"node": node, "interfaces_known": True,
            "interfaces": [{"name": n, "mac": "02:00:00:00:00:01", "addresses": a} for n, a in sorted(ifaces.items())]}


def verdicts(st, statuses) -> dict[str, dict]:
    return doctor.l2_subnets(st, statuses)["default/web"]


def test_ipv4_inside_and_outside_the_nodes_subnet(tmp_path: Path) -> None:
    _, st = cluster(tmp_path, "[10.89.0.50/32]", "{}")
    v = verdicts(st, {"node-a": status("node-a", eth0=["10.89.0.1/24"])})
    assert v["10.89.0.50"]["verdict"] == "yes" and v["10.89.0.50"]["match"] == "eth0 10.89.0.1/24"
    _, st = cluster(tmp_path, "[192.0.2.50/32]", "{}")
    v = verdicts(st, {"node-a": status("node-a", eth0=["10.89.0.1/24"])})
    assert v["192.0.2.50"]["verdict"] == "no" and v["192.0.2.50"]["subnets"] == ["eth0:10.89.0.0/24"]
    assert "never reaches node-a" in v["192.0.2.50"]["why"]


def test_ipv6_subnet_and_link_local_never_counts(tmp_path: Path) -> None:
    _, st = cluster(tmp_path, "['2001:db8:1::50/128']", "{}", svc_families="[IPv6]")
    ok = status("node-a", eth0=["fe80::1/64", "2001:db8:1::1/64"])
    assert verdicts(st, {"node-a": ok})["2001:db8:1::50"]["verdict"] == "yes"
    only_ll = status("node-a", eth0=["10.89.0.1/24", "fe80::1/64"])
    v = verdicts(st, {"node-a": only_ll})["2001:db8:1::50"]
    assert v["verdict"] == "no" and v["subnets"] == []  # the IPv4 subnet and fe80::/64 are not candidates


def test_only_the_interfaces_the_l2advertisement_selects_count(tmp_path: Path) -> None:
    _, st = cluster(tmp_path, "[10.50.0.7/32]", "{interfaces: [eth1]}")
    # eth0 has the right subnet but the advertisement restricts announcing to eth1
    wrong = status("node-a", eth0=["10.50.0.1/24"], eth1=["10.89.0.1/24"])
    v = verdicts(st, {"node-a": wrong})["10.50.0.7"]
    assert v["verdict"] == "no" and v["interfaces"] == ["eth1"] and v["subnets"] == ["eth1:10.89.0.0/24"]
    right = status("node-a", eth0=["10.89.0.1/24"], eth1=["10.50.0.1/24"])
    assert verdicts(st, {"node-a": right})["10.50.0.7"]["match"] == "eth1 10.50.0.1/24"
    missing = status("node-a", eth0=["10.50.0.1/24"])
    v = verdicts(st, {"node-a": missing})["10.50.0.7"]
    assert v["verdict"] == "no" and "none of the interfaces" in v["why"]


def test_node_with_several_subnets_on_several_interfaces(tmp_path: Path) -> None:
    _, st = cluster(tmp_path, "[172.16.5.9/32, '2001:db8:5::9/128']", "{}",
                    svc_families="[IPv4, IPv6]")
    s = status("node-a", eth0=["10.89.0.1/24", "172.16.0.1/16"], eth1=["192.168.1.1/24", "2001:db8:5::1/64"])
    v = verdicts(st, {"node-a": s})
    assert v["172.16.5.9"]["match"] == "eth0 172.16.0.1/16"
    assert v["2001:db8:5::9"]["match"] == "eth1 2001:db8:5::1/64"
    s2 = status("node-a", eth0=["10.89.0.1/24", "172.17.0.1/16"], eth1=["192.168.1.1/24"])
    v = verdicts(st, {"node-a": s2})
    assert v["172.16.5.9"]["verdict"] == "no"
    assert v["172.16.5.9"]["subnets"] == ["eth0:10.89.0.0/24", "eth0:172.17.0.0/16", "eth1:192.168.1.0/24"]


def test_without_speaker_data_the_answer_is_unknown(tmp_path: Path) -> None:
    _, st = cluster(tmp_path, "[192.0.2.50/32]", "{}")
    assert verdicts(st, {})["192.0.2.50"]["verdict"] == "unknown"
    stale = {"node-a": {"node": "node-a", "interfaces_known": False, "interfaces": []}}  # addresses not read yet
    assert verdicts(st, stale)["192.0.2.50"]["verdict"] == "unknown"
    other = {"node-b": status("node-b", eth0=["192.0.2.1/24"])}  # data, but from another node than the owner
    assert verdicts(st, other)["192.0.2.50"]["verdict"] == "unknown"


def _explain(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("STREAMLB_REDIS_URL", None)
    return subprocess.run([sys.executable, "-m", "reconciler", "explain", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)


def test_explain_offline_says_unknown_and_with_a_status_file_judges(tmp_path: Path) -> None:
    log, _ = cluster(tmp_path, "[192.0.2.50/32]", "{}")
    r = _explain("web", "--log", str(log), "-o", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["l2_subnet"]["192.0.2.50"]["verdict"] == "unknown"
    sfile = tmp_path / "node-a.status.json"
    sfile.write_text(json.dumps(status("node-a", eth0=["10.89.0.1/24"])))
    r = _explain("web", "--log", str(log), "--speaker-status", str(sfile), "-o", "json")
    assert json.loads(r.stdout)["l2_subnet"]["192.0.2.50"]["verdict"] == "no"
    r = _explain("web", "--log", str(log), "--speaker-status", str(sfile))
    assert r.returncode == 0 and "L2 subnet: 192.0.2.50 on node-a: no" in r.stdout
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    r = _explain("web", "--log", str(log), "--speaker-status", str(bad))
    assert r.returncode == 2 and "bad.json" in r.stderr and "Traceback" not in r.stderr


def test_replay_is_unchanged_by_speaker_data(tmp_path: Path) -> None:
    """Speaker data never enters the fold: replay's output has no subnet verdicts and does not depend on them."""
    log, _ = cluster(tmp_path, "[192.0.2.50/32]", "{}")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "reconciler", "replay", str(log), "-o", "json"], capture_output=True,
                         env=env, cwd=ROOT, timeout=60)
    assert out.returncode == 0 and b"subnet" not in out.stdout
