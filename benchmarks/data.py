"""Seeded generators of realistic event logs, shared by benchmarks and tests (msgspec's generate_data idea).

``make_event_log(n_events, n_services, n_nodes, n_pools, seed)`` returns a list of events: configuration first
(pools, one L2Advertisement, namespaces, nodes), then a stream of Service creates/updates/deletes and
EndpointSlice churn, drawn with ``random.Random(seed)`` so the same arguments always give the same log.
"""

from __future__ import annotations

import ipaddress
import random

from events import schema

NAMESPACES = ("default", "web", "payments", "staging", "batch")


def _pool(i: int, size_v4: int) -> schema.IPAddressPool:
    base = ipaddress.IPv4Address("10.0.0.0") + i * size_v4
    prefix = 32 - (size_v4 - 1).bit_length()
    return schema.IPAddressPool(
        namespace="metallb-system",
        name=f"pool-{i:04d}",
        labels=(("zone", f"z{i % 4}"),),
        addresses=(f"{base}/{prefix}", f"fd00:{i:x}::/112"),
    )


def _service(rng: random.Random, idx: int, version: int) -> schema.Service:
    ns = NAMESPACES[idx % len(NAMESPACES)]
    dual = idx % 10 == 0
    v6 = str(ipaddress.IPv6Address(f"fd96::{idx >> 16:x}:{idx & 0xFFFF:x}"))  # valid beyond 65,535 services
    cips = (f"172.30.{(idx >> 8) & 255}.{idx & 255}",) + ((v6,) if dual else ())
    return schema.Service(
        namespace=ns,
        name=f"svc-{idx:06d}",
        labels=(("app", f"app-{idx % 97}"), ("rev", str(version))),
        type="LoadBalancer",
        cluster_ips=cips,
        ip_family_policy="RequireDualStack" if dual else "SingleStack",
        external_traffic_policy="Local" if idx % 3 == 0 else "Cluster",
        selector=(("app", f"app-{idx % 97}"),),
        ports=(schema.ServicePort(protocol="TCP", port=80 + (version % 3)),),
    )


def _slice(rng: random.Random, idx: int, n_nodes: int) -> schema.EndpointSlice:
    ns = NAMESPACES[idx % len(NAMESPACES)]
    eps = tuple(
        schema.Endpoint(
            addresses=(f"10.244.{rng.randrange(256)}.{rng.randrange(1, 255)}",),
            ready=rng.random() > 0.1,
            node_name=f"node-{rng.randrange(n_nodes):04d}",
        )
        for _ in range(rng.randint(1, 3))
    )
    return schema.EndpointSlice(
        namespace=ns,
        name=f"svc-{idx:06d}-eps",
        labels=(("kubernetes.io/service-name", f"svc-{idx:06d}"),),
        service_name=f"svc-{idx:06d}",
        endpoints=eps,
    )


def make_config(n_nodes: int, n_pools: int, pool_size: int) -> list[schema.Event]:
    out: list[schema.Event] = []
    for ns in NAMESPACES:
        out.append(schema.K8sUpsert(obj=schema.Namespace(name=ns, labels=(("team", ns),))))
    for i in range(n_pools):
        out.append(schema.K8sUpsert(obj=_pool(i, pool_size)))
    out.append(schema.K8sUpsert(obj=schema.L2Advertisement(namespace="metallb-system", name="l2")))
    for n in range(n_nodes):
        out.append(
            schema.K8sUpsert(obj=schema.Node(name=f"node-{n:04d}", labels=(("kubernetes.io/hostname", f"node-{n:04d}"),)))
        )
    return out


def make_event_log(
    n_events: int,
    n_services: int = 1000,
    n_nodes: int = 20,
    n_pools: int = 4,
    seed: int = 42,
) -> list[schema.Event]:
    """A log of exactly ``n_events`` events (configuration first, then churn)."""
    rng = random.Random(seed)
    pool_size = 1 << max(4, (2 * n_services // max(1, n_pools)).bit_length())
    log = make_config(n_nodes, n_pools, pool_size)
    live: dict[int, int] = {}  # service index -> version
    next_idx = 0
    while len(log) < n_events:
        r = rng.random()
        if (r < 0.35 and next_idx < n_services) or not live:
            idx = next_idx
            next_idx += 1
            live[idx] = 0
            log.append(schema.K8sUpsert(obj=_service(rng, idx, 0)))
        elif r < 0.55:
            idx = rng.choice(sorted(live)) if len(live) < 64 else rng.randrange(next_idx)
            if idx in live:
                live[idx] += 1
                log.append(schema.K8sUpsert(obj=_service(rng, idx, live[idx])))
        elif r < 0.9:
            idx = rng.randrange(next_idx)
            if idx in live:
                log.append(schema.K8sUpsert(obj=_slice(rng, idx, n_nodes)))
        elif r < 0.95:
            idx = rng.randrange(next_idx)
            if idx in live:
                del live[idx]
                ns = NAMESPACES[idx % len(NAMESPACES)]
                log.append(schema.K8sDelete(ref=schema.ObjectRef(kind="Service", namespace=ns, name=f"svc-{idx:06d}")))
        else:
            node = f"node-{rng.randrange(n_nodes):04d}"
            log.append(schema.SpeakerDown(node=node) if rng.random() < 0.5 else schema.SpeakerUp(node=node))
    return log[:n_events]


def watch_log_lines(n_services: int, *, node: str = "lbnode", peer_address: str = "127.0.0.1",
                    peer_port: int = 179, source_address: str = "", peer_asn: int = 64512, my_asn: int = 64513,
                    seed: int = 42) -> list[bytes]:
    """A Kubernetes watch log (``kubectl get -w -o json --output-watch-events`` JSON lines) of a BGP cluster with
    ``n_services`` LoadBalancer Services, each with one EndpointSlice serving on ``node``: one IPAddressPool big
    enough for all of them, one BGPAdvertisement, one BGPPeer (``peer_address:peer_port``, eBGP multi-hop) and
    the Node, then ``2 * n_services`` ADDED events — 200,006 lines for 100,000 Services, the issue-17 scale.

    The objects look like what the API server sends (uids, resourceVersions, managed fields left out), so the
    producer translates and drops the same fields it does for a real cluster."""
    import json

    rng = random.Random(seed)
    bits = max(8, (n_services * 2 - 1).bit_length())
    pool = f"11.0.0.0/{32 - bits}" if bits <= 24 else "11.0.0.0/8"
    ms = "metallb-system"

    def line(obj: dict, kind: str = "ADDED") -> bytes:
        return json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode()

    def meta(name: str, ns: str | None = None, **extra) -> dict:
        m = {"name": name, "uid": f"{rng.getrandbits(64):016x}",
             "resourceVersion": str(rng.randrange(10**6, 10**7)), "creationTimestamp": "2026-01-01T00:00:00Z",
             **extra}
        if ns is not None:
            m["namespace"] = ns
        return m

    peer_spec = {"myASN": my_asn, "peerASN": peer_asn, "peerAddress": peer_address, "peerPort": peer_port,
                 "ebgpMultiHop": True, "holdTime": "90s"}
    if source_address:
        peer_spec["sourceAddress"] = source_address
    out = [
        line({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": meta("bgp-pool", ms),
              "spec": {"addresses": [pool]}}),
        line({"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement", "metadata": meta("bgp", ms),
              "spec": {"ipAddressPools": ["bgp-pool"]}}),
        line({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer", "metadata": meta("router", ms),
              "spec": peer_spec}),
        line({"apiVersion": "v1", "kind": "Node",
              "metadata": meta(node, labels={"kubernetes.io/hostname": node, "kubernetes.io/os": "linux"}),
              "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        line({"apiVersion": "v1", "kind": "Namespace", "metadata": meta("default", labels={"team": "web"})}),
        line({"apiVersion": "v1", "kind": "Namespace", "metadata": meta("web", labels={"team": "web"})}),
    ]
    for i in range(n_services):
        ns = ("default", "web")[i % 2]
        name = f"svc-{i:06d}"
        cip = f"172.{20 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"
        out.append(line({
            "apiVersion": "v1", "kind": "Service",
            "metadata": meta(name, ns, labels={"app": name, "tier": ("web", "api", "db")[i % 3]},
                             annotations={"kubectl.kubernetes.io/last-applied-configuration": "{}"}),
            "spec": {"type": "LoadBalancer", "clusterIP": cip, "clusterIPs": [cip], "ipFamilies": ["IPv4"],
                     "ipFamilyPolicy": "SingleStack", "externalTrafficPolicy": "Cluster", "sessionAffinity": "None",
                     "selector": {"app": name},
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080,
                                "nodePort": 30000 + i % 2000}]},
            "status": {"loadBalancer": {}},
        }))
        out.append(line({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": meta(f"{name}-{rng.getrandbits(20):05x}", ns, labels={"kubernetes.io/service-name": name}),
            "addressType": "IPv4",
            "endpoints": [{"addresses": [f"10.{100 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"],
                           "conditions": {"ready": True, "serving": True, "terminating": False},
                           "nodeName": node}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        }))
    return out


# ----------------------------------------------------------------------------------------------------------------
# A large cluster's watch log (issue 14): Kubernetes watch-event JSON lines, as `kubectl get -w -o json
# --output-watch-events` or the API's watch endpoint give them.

NODE_ZONES = ("a", "b", "c", "d")
EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"


def _w(kind_type: str, obj: dict) -> dict:
    return {"type": kind_type, "object": obj}


def _node_obj(name: str, labels: dict, unavailable: bool) -> dict:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": dict(sorted(labels.items()))},
        "status": {"conditions": [
            {"type": "Ready", "status": "True"},
            {"type": "NetworkUnavailable", "status": "True" if unavailable else "False"},
        ]},
    }


def _svc_obj(idx: int, pool: str, local: bool, dual: bool) -> dict:
    ns = NAMESPACES[idx % len(NAMESPACES)]
    cip = f"172.{16 + (idx >> 16)}.{(idx >> 8) & 255}.{idx & 255}"
    cips = [cip] + ([f"fd96::{idx >> 16:x}:{idx & 0xFFFF:x}"] if dual else [])
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": f"svc-{idx:06d}", "namespace": ns,
                     "labels": {"app": f"app-{idx % 97}", "tier": ("web", "api", "db")[idx % 3]},
                     "annotations": {"metallb.io/address-pool": pool}},
        "spec": {"type": "LoadBalancer", "clusterIP": cip, "clusterIPs": cips,
                 "ipFamilies": ["IPv4", "IPv6"] if dual else ["IPv4"],
                 "ipFamilyPolicy": "RequireDualStack" if dual else "SingleStack",
                 "externalTrafficPolicy": "Local" if local else "Cluster",
                 "selector": {"app": f"app-{idx % 97}"},
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
    }


def _slice_obj(rng: random.Random, idx: int, nodes: list[str], version: int) -> dict:
    ns = NAMESPACES[idx % len(NAMESPACES)]
    eps = [
        {"addresses": [f"10.{64 + (version % 64)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"],
         "conditions": {"ready": rng.random() > 0.08}, "nodeName": rng.choice(nodes)}
        for _ in range(rng.randint(1, 3))
    ]
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": f"svc-{idx:06d}-abcde", "namespace": ns,
                     "labels": {"kubernetes.io/service-name": f"svc-{idx:06d}"}},
        "endpoints": eps,
    }


def _metallb(kind: str, name: str, spec: dict, labels: dict | None = None, version: str = "v1beta1") -> dict:
    meta: dict = {"name": name, "namespace": "metallb-system"}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": f"metallb.io/{version}", "kind": kind, "metadata": meta, "spec": spec}


def cluster_config(n_pools: int = 50, n_peers: int = 4) -> list[dict]:
    """Pools (even: L2, odd: BGP, each a /22 and an IPv6 /118), one L2Advertisement, two BGPAdvertisements (one for
    every BGP speaker node, one adding a community on edge nodes) and ``n_peers`` BGPPeers, half selecting zones
    a+b, half zones c+d."""
    out = [_w("ADDED", {"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": ns, "labels": {"team": ns}}}) for ns in NAMESPACES]
    for i in range(n_pools):
        mode = "l2" if i % 2 == 0 else "bgp"
        base = ipaddress.IPv4Address("10.0.0.0") + i * 1024
        out.append(_w("ADDED", _metallb("IPAddressPool", f"pool-{i:03d}", {
            "addresses": [f"{base}/22", f"fd00:{i:x}::/118"]}, labels={"mode": mode})))
    out.append(_w("ADDED", _metallb("L2Advertisement", "l2", {
        "ipAddressPoolSelectors": [{"matchLabels": {"mode": "l2"}}]})))
    out.append(_w("ADDED", _metallb("BGPAdvertisement", "bgp", {
        "ipAddressPoolSelectors": [{"matchLabels": {"mode": "bgp"}}], "localPref": 100,
        "communities": ["64512:100"], "nodeSelectors": [{"matchLabels": {"bgp-speaker": "true"}}]})))
    out.append(_w("ADDED", _metallb("BGPAdvertisement", "bgp-edge", {
        "ipAddressPoolSelectors": [{"matchLabels": {"mode": "bgp"}}], "localPref": 100,
        "communities": ["large:64512:1:2"], "nodeSelectors": [{"matchLabels": {"role": "edge"}}]})))
    for p in range(n_peers):
        zones = ["a", "b"] if p < n_peers // 2 else ["c", "d"]
        out.append(_w("ADDED", _metallb("BGPPeer", f"tor-{p}", {
            "myASN": 64512, "peerASN": 64513 + p, "peerAddress": f"192.0.2.{p + 1}",
            "nodeSelectors": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": zones}]}]},
            version="v1beta2")))
    return out


def large_cluster_watch_log(
    n_events: int = 200_000,
    n_nodes: int = 500,
    n_peers: int = 4,
    n_pools: int = 50,
    n_services: int = 20_000,
    seed: int = 14,
) -> list[dict]:
    """A seeded watch log of exactly ``n_events`` lines: the configuration and the Nodes first, then ~13 % Node
    changes (half label changes — BGP-speaker role, zone, the exclude label — half NetworkUnavailable flips), ~40 %
    EndpointSlice churn and the rest Service creates and deletes (up to ``n_services`` live; half in L2 pools,
    half in BGP pools; one in three ``externalTrafficPolicy: Local``; one in ten dual-stack)."""
    rng = random.Random(seed)
    log = cluster_config(n_pools, n_peers)
    nodes = [f"node-{n:04d}" for n in range(n_nodes)]
    labels: dict[str, dict] = {}
    unavailable: dict[str, bool] = {}
    for i, n in enumerate(nodes):
        labels[n] = {"kubernetes.io/hostname": n, "zone": NODE_ZONES[i % 4],
                     "bgp-speaker": "true" if i % 2 == 0 else "false", "role": "edge" if i % 10 == 0 else "worker"}
        unavailable[n] = False
        log.append(_w("ADDED", _node_obj(n, labels[n], False)))
    live: list[int] = []  # live Service indexes (random choice and swap-removal in O(1))
    where: dict[int, int] = {}  # index -> position in ``live``
    version: dict[int, int] = {}  # index -> slice version
    free: list[int] = []
    next_idx = 0
    while len(log) < n_events:
        r = rng.random()
        if r < 0.13:
            n = nodes[rng.randrange(n_nodes)]
            if rng.random() < 0.5:
                unavailable[n] = not unavailable[n]
            else:
                lab = labels[n]
                what = rng.random()
                if what < 0.6:
                    lab["bgp-speaker"] = "false" if lab["bgp-speaker"] == "true" else "true"
                elif what < 0.85:
                    lab["zone"] = NODE_ZONES[rng.randrange(4)]
                elif EXCLUDE_LABEL in lab:
                    del lab[EXCLUDE_LABEL]
                else:
                    lab[EXCLUDE_LABEL] = ""
            log.append(_w("MODIFIED", _node_obj(n, labels[n], unavailable[n])))
        elif r < 0.53:
            if not live:
                continue
            idx = live[rng.randrange(len(live))]
            v = version.get(idx, -1) + 1
            version[idx] = v
            log.append(_w("ADDED" if v == 0 else "MODIFIED", _slice_obj(rng, idx, nodes, v)))
        elif len(live) < n_services and (rng.random() < 0.62 or len(live) < 16):
            if free and rng.random() < 0.5:
                idx = free.pop()
            else:
                idx = next_idx
                next_idx += 1
            where[idx] = len(live)
            live.append(idx)
            pool = f"pool-{(idx * 7) % n_pools:03d}"
            log.append(_w("ADDED", _svc_obj(idx, pool, local=idx % 3 == 0, dual=idx % 10 == 0)))
        else:
            pos = rng.randrange(len(live))
            idx = live[pos]
            last = live.pop()
            if last != idx:
                live[pos] = last
                where[last] = pos
            del where[idx]
            free.append(idx)
            ns = NAMESPACES[idx % len(NAMESPACES)]
            log.append(_w("DELETED", {"apiVersion": "v1", "kind": "Service",
                                      "metadata": {"name": f"svc-{idx:06d}", "namespace": ns}}))
    return log[:n_events]


def write_jsonl(path, lines: list[dict]) -> None:
    """Write watch events as JSON lines (msgspec, compact)."""
    import msgspec

    enc = msgspec.json.Encoder()
    with open(path, "wb") as f:
        for obj in lines:
            f.write(enc.encode(obj))
            f.write(b"\n")
