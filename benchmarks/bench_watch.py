"""The Kubernetes producer's hot path: a LIST response body turned into the events to append, and the import.

What is measured:

* re-list, cold: ``json.loads`` of a ServiceList body as the API server sends it (typed list: items without
  apiVersion/kind) + ``streamlb watch``'s planning (translate each object to its canonical event, fingerprint it,
  diff against an empty ledger). Baseline: ``json.loads`` + the ``kubernetes`` client's own deserialisation of the
  same body into ``V1ServiceList`` models — what a watcher built on the typed client pays before it has even
  looked at an object.
* re-list, unchanged: the same after the ledger already holds every object (a 410 or a restart of a quiet
  cluster): everything is translated and fingerprinted, nothing is appended. Same baseline.
* ``import metallb`` of a dump of N Services (parse, translate, order, verify by folding). Baseline: the YAML parse
  alone (PyYAML's C loader), the floor of any importer of the same file.

What is not measured: the HTTP transfer and the log append (see bench_stream for Redis appends).
"""

from __future__ import annotations

import json
import random
import time

import yaml
from kubernetes import client

from events import memory
from reconciler.runtime.kube import watch as kube_watch
from reconciler.runtime.kube import migrate

NAME = "watch"


def _services(n: int, seed: int = 42) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ns = f"team-{i % 50}"
        out.append({
            "metadata": {"name": f"svc-{i}", "namespace": ns, "uid": f"{rng.getrandbits(64):016x}",
                         "resourceVersion": str(1000 + i), "creationTimestamp": "2026-01-01T00:00:00Z",
                         "labels": {"app": f"svc-{i}", "tier": rng.choice(["web", "api", "db"])},
                         "annotations": {"metallb.io/ip-allocated-from-pool": "pool-a",
                                         "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"type": "LoadBalancer", "clusterIP": f"10.96.{i >> 8 & 255}.{i & 255}",
                     "clusterIPs": [f"10.96.{i >> 8 & 255}.{i & 255}"], "ipFamilies": ["IPv4"],
                     "ipFamilyPolicy": "SingleStack", "externalTrafficPolicy": "Cluster",
                     "selector": {"app": f"svc-{i}"}, "sessionAffinity": "None",
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080,
                                "nodePort": 30000 + i % 2000}]},
            "status": {"loadBalancer": {"ingress": [{"ip": f"192.168.{i >> 8 & 255}.{i & 255}", "ipMode": "VIP"}]}},
        })
    return out


def _body(n: int) -> bytes:
    return json.dumps({"kind": "ServiceList", "apiVersion": "v1", "metadata": {"resourceVersion": "99999"},
                       "items": _services(n)}).encode()


def _plan_rate(body: bytes, watcher: kube_watch.Watcher, res: kube_watch.Resource) -> tuple[float, int]:
    session = kube_watch._Session(resume=False, rvs={})
    t0 = time.perf_counter()
    items = json.loads(body)["items"]
    tentative: dict = {}
    out: list = []
    watcher._plan(("relist", session, res, items, "99999"), tentative, out, {})
    dt = time.perf_counter() - t0
    for k, v in tentative.items():
        if v is not None:
            watcher.ledger[k] = v
    return len(items) / dt, len(out)


def _typed_rate(body: bytes) -> float:
    api = client.ApiClient()
    t0 = time.perf_counter()
    data = json.loads(body)
    api._ApiClient__deserialize(data, "V1ServiceList")
    return len(data["items"]) / (time.perf_counter() - t0)


def _import_times(n: int) -> tuple[float, float]:
    items = [dict(s, apiVersion="v1", kind="Service") for s in _services(n)]
    pool = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "pool-a", "namespace": "metallb-system"}, "spec": {"addresses": ["192.168.0.0/16"]}}
    text = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [pool, *items]})
    loader = yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader
    t0 = time.perf_counter()
    list(yaml.load_all(text, Loader=loader))
    parse = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = migrate.import_metallb([("dump.yaml", text)])
    total = time.perf_counter() - t0
    assert res.assignments_kept == n, res.assignments_kept
    return total, parse


def run(quick: bool) -> list[dict]:
    sizes = [1_000, 5_000] if quick else [2_000, 10_000, 40_000]
    res = kube_watch.CLUSTER_RESOURCES[0]
    cold, warm, typed = [], [], []
    for n in sizes:
        body = _body(n)
        w = kube_watch.Watcher(None, memory.MemoryLog())
        c, appended = _plan_rate(body, w, res)
        assert appended == n
        u, appended_again = _plan_rate(body, w, res)
        assert appended_again == 0
        t = _typed_rate(body)
        cold.append([n, c])
        warm.append([n, u])
        typed.append([n, t])
    n_imp = 1_000 if quick else 5_000
    imp, parse = _import_times(n_imp)
    return [
        {
            "name": "watch re-list, cold (body -> events)",
            "unit": "objects/s",
            "streamlb": cold[-1][1],
            "baselines": {"kubernetes client V1ServiceList deserialise": typed[-1][1]},
            "higher_is_better": True,
            "notes": f"{sizes[-1]:,} Services in one LIST body; every one becomes an event",
            "series": {"streamlb cold re-list": cold, "streamlb unchanged re-list": warm,
                       "kubernetes client typed list": typed},
            "series_x": "Services in the list",
            "series_y": "objects/s",
        },
        {
            "name": "watch re-list, unchanged cluster (nothing appended)",
            "unit": "objects/s",
            "streamlb": warm[-1][1],
            "baselines": {"kubernetes client V1ServiceList deserialise": typed[-1][1]},
            "higher_is_better": True,
            "notes": f"{sizes[-1]:,} Services, all already in the ledger",
        },
        {
            "name": f"import metallb ({n_imp:,} Services)",
            "unit": "s",
            "streamlb": imp,
            "baselines": {"YAML parse only (PyYAML C loader)": parse},
            "higher_is_better": False,
            "notes": "parse + translate + order + verifying fold; every assignment kept",
        },
    ]
