"""The stand-in API server checked with ``kubectl``: if kubectl's own discovery, paging and ``get -w`` work
against it, it follows the protocol a real client expects (so the watcher's tests mean something)."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading

import pytest

from tests.kube.fakeapi import FakeKube

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]


def _kubectl(kubeconfig: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", "--kubeconfig", kubeconfig, *args], capture_output=True, text=True, timeout=60)


def _svc(name: str, port: int = 80) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "shop"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.9", "ports": [{"port": port}]}}


def test_kubectl_get_watch_follows_changes(fake: FakeKube, kubeconfig: str) -> None:
    fake.put(_svc("a"))
    proc = subprocess.Popen(["kubectl", "--kubeconfig", kubeconfig, "get", "services", "-A", "-w", "-o", "json",
                             "--output-watch-events", "--chunk-size", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(json.loads(ln)) for ln in proc.stdout if ln.strip()],
                     daemon=True).start()
    try:
        first = lines.get(timeout=20)
        assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "a")
        fake.put(_svc("a", 8080))
        fake.put(_svc("b"))
        fake.remove("Service", "shop", "a")
        got = [lines.get(timeout=20) for _ in range(3)]
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in got] == [
            ("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]
        assert got[0]["object"]["spec"]["ports"][0]["port"] == 8080
        rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in [first, *got]]
        assert rvs == sorted(rvs) and len(set(rvs)) == 4
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    # kubectl listed in pages of one and then watched from the list's resourceVersion
    assert fake.count("GET", r"/api/v1/services\?limit=1$") == 1
    assert fake.count("GET", r"/api/v1/services\?resourceVersion=\d+&watch=true") == 1


def test_kubectl_sees_the_metallb_crds_in_both_bgppeer_versions(fake: FakeKube, kubeconfig: str) -> None:
    fake.put({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer", "metadata": {"name": "p",
              "namespace": "metallb-system"}, "spec": {"myASN": 64512, "peerASN": 64500, "peerAddress": "10.0.0.1"}})
    res = _kubectl(kubeconfig, "get", "bgppeers.v1beta1.metallb.io", "-n", "metallb-system", "-o", "json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["items"][0]["apiVersion"] == "metallb.io/v1beta1"
    res = _kubectl(kubeconfig, "get", "bgppeers", "-n", "metallb-system", "-o", "json")
    assert json.loads(res.stdout)["items"][0]["apiVersion"] == "metallb.io/v1beta2"  # preferred version


def test_kubectl_raw_watch_from_a_compacted_version_gets_410(fake: FakeKube, kubeconfig: str) -> None:
    fake.put(_svc("a"))
    old = fake.rv
    fake.put(_svc("a", 81))
    fake.compact()
    res = _kubectl(kubeconfig, "get", "--raw", f"/api/v1/services?watch=true&resourceVersion={old}")
    assert res.returncode == 0, res.stderr
    event = json.loads(res.stdout.splitlines()[0])
    assert event["type"] == "ERROR" and event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"


def test_kubectl_write_conflict_is_409(fake: FakeKube, kubeconfig: str, tmp_path) -> None:
    stored = fake.put(_svc("a"))
    stale = dict(stored, apiVersion="v1", kind="Service")
    fake.put(_svc("a", 81))  # someone else changed it
    path = tmp_path / "svc.json"
    path.write_text(json.dumps(stale))
    res = _kubectl(kubeconfig, "replace", "--validate=false", "-f", str(path))
    assert res.returncode != 0 and "the object has been modified" in res.stderr
