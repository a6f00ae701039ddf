"""The whole loop on one machine: API server -> ``streamlb watch`` -> Redis stream -> ``streamlb run
--write-status`` -> Service status in the API server (and back into the stream through the watch)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from events import stream
from tests.kube.conftest import wait_for
from tests.kube.fakeapi import FakeKube
from tests.redis_server import DaemonProc, redis_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
NS = "metallb-system"


def _svc(name: str, ip: str, cls: str | None = None) -> dict:
    spec = {"type": "LoadBalancer", "clusterIP": ip, "clusterIPs": [ip], "ports": [{"port": 443, "protocol": "TCP"}]}
    if cls:
        spec["loadBalancerClass"] = cls
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "shop"}, "spec": spec}


def _ingress(fake: FakeKube, name: str) -> list[str]:
    o = fake.get("Service", "shop", name) or {}
    return [i["ip"] for i in ((o.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]


def test_watch_run_write_status_round_trip(fake: FakeKube, kubeconfig: str, redis_server, tmp_path: Path) -> None:  # noqa: F811
    fake.put({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "pub", "namespace": NS},
              "spec": {"addresses": ["192.168.50.10-192.168.50.12"]}})
    fake.put({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement", "metadata": {"name": "l2", "namespace": NS}})
    fake.put(_svc("web", "10.96.0.1"))
    fake.put(_svc("foreign", "10.96.0.9", cls="example.com/other"))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(tmp_path / "watch.log", "wb") as errf:
        watch = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "watch", "--kubeconfig", kubeconfig, "--redis-url", redis_server.url,
             "--cluster", "e2e", "--state", str(tmp_path / "watch.state")],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=errf)
    run = DaemonProc(tmp_path, redis_server.url, "e2e", "r1", "--write-status", "--kubeconfig", kubeconfig,
                     "--log-level", "warning").start()
    try:
        wait_for(lambda: _ingress(fake, "web") == ["192.168.50.10"], timeout=30, what="web status written")
        fake.put(_svc("api", "10.96.0.2"))
        wait_for(lambda: _ingress(fake, "api") == ["192.168.50.11"], timeout=30, what="api status written")
        web = fake.get("Service", "shop", "web")
        assert web["metadata"]["annotations"]["metallb.io/ip-allocated-from-pool"] == "pub"
        wait_for(lambda: {(e["involvedObject"]["name"], e["reason"]) for e in fake.objects_of("Event")}
                 == {("web", "IPAllocated"), ("api", "IPAllocated")}, timeout=30, what="events")
        wait_for(lambda: fake.get("IPAddressPool", NS, "pub").get("status", {}).get("assignedIPv4") == 2,
                 timeout=30, what="pool status")
        assert fake.get("IPAddressPool", NS, "pub")["status"]["availableIPv4"] == 1
        # the status write comes back through the watch (a Service upsert carrying its ingress) and settles:
        lg = stream.StreamLog.from_url(redis_server.url, "e2e")
        time.sleep(1.5)
        n = lg.length()
        time.sleep(1.5)
        assert lg.length() == n  # no feedback loop
        assert _ingress(fake, "foreign") == [] and "annotations" not in fake.get("Service", "shop", "foreign")["metadata"]
        assert not [e for e in fake.objects_of("Event") if e["involvedObject"]["name"] == "foreign"]
        lg.close()
    finally:
        run.stop()
        if watch.poll() is None:
            watch.send_signal(signal.SIGTERM)
            watch.wait(timeout=15)
    assert watch.returncode == 0, (tmp_path / "watch.log").read_text()
