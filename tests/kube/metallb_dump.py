"""A realistic MetalLB cluster dump, as ``kubectl get ... -A -o yaml`` prints it, built from a seed.

The addresses in Service statuses are what a MetalLB controller would have left after months of churn: each
Service holds a random free address of a pool it is allowed to use (MetalLB tries fallback pools in random order
and deletes free addresses in the middle), not the lowest one — so an importer that re-allocated instead of
re-claiming would be caught. Objects carry the noise real dumps carry (uid, resourceVersion, managedFields,
last-applied annotations, ``ipMode``), and the MetalLB configuration mixes v1beta1 and v1beta2 BGPPeers, FRR-only
fields, a BFD profile, Communities, a ``bgpextras`` ConfigMap and MetalLB status objects.
"""

from __future__ import annotations

import ipaddress
import json
import random
import uuid
from typing import Any

import yaml

NS = "metallb-system"


def _meta(rng: random.Random, name: str, namespace: str | None = None, **extra: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "name": name,
        "uid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "resourceVersion": str(rng.randint(1000, 9_999_999)),
        "creationTimestamp": f"2026-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T0{rng.randint(0, 9)}:12:44Z",
        "generation": rng.randint(1, 4),
    }
    if namespace is not None:
        m["namespace"] = namespace
    m.update(extra)
    return m


def _managed(manager: str) -> list[dict[str, Any]]:
    return [{"apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:ports": {}}},
             "manager": manager, "operation": "Update", "time": "2026-03-01T10:00:00Z"}]


def config_objects(rng: random.Random) -> list[dict[str, Any]]:
    mb = "metallb.io/v1beta1"
    objs: list[dict[str, Any]] = [
        {"apiVersion": mb, "kind": "IPAddressPool", "metadata": _meta(rng, "general", NS, labels={"tier": "public"}),
         "spec": {"addresses": ["10.10.0.0/22", "10.10.8.10-10.10.9.250"], "autoAssign": True, "avoidBuggyIPs": True},
         "status": {"assignedIPv4": 0, "availableIPv4": 1, "assignedIPv6": 0, "availableIPv6": 0}},
        {"apiVersion": mb, "kind": "IPAddressPool", "metadata": _meta(rng, "spare", NS),
         "spec": {"addresses": ["172.20.0.0/24"]}},
        {"apiVersion": mb, "kind": "IPAddressPool", "metadata": _meta(rng, "team-a", NS),
         "spec": {"addresses": ["10.20.0.0/25"],
                  "serviceAllocation": {"priority": 10, "namespaces": ["team-a", "team-a-staging"]}}},
        {"apiVersion": mb, "kind": "IPAddressPool", "metadata": _meta(rng, "dual", NS),
         "spec": {"addresses": ["10.30.0.0/26", "2001:db8:30::/120"],
                  "serviceAllocation": {"priority": 20, "namespaceSelectors": [{"matchLabels": {"stack": "dual"}}]}}},
        {"apiVersion": mb, "kind": "IPAddressPool", "metadata": _meta(rng, "reserved", NS),
         "spec": {"addresses": ["192.0.2.0/28"], "autoAssign": False}},
        {"apiVersion": mb, "kind": "L2Advertisement", "metadata": _meta(rng, "l2-general", NS),
         "spec": {"ipAddressPools": ["general", "spare"], "interfaces": ["eth0"],
                  "nodeSelectors": [{"matchLabels": {"node-role.kubernetes.io/worker": ""}}]}},
        {"apiVersion": mb, "kind": "BGPAdvertisement", "metadata": _meta(rng, "bgp-teams", NS),
         "spec": {"ipAddressPoolSelectors": [{"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}],
                  "communities": ["no-export", "64512:100"], "localPref": 200, "peers": ["tor-a", "tor-b"]}},
        {"apiVersion": mb, "kind": "Community", "metadata": _meta(rng, "aliases", NS),
         "spec": {"communities": [{"name": "no-export", "value": "65535:65281"},
                                  {"name": "big", "value": "large:64512:1:2"}]}},
        {"apiVersion": mb, "kind": "BFDProfile", "metadata": _meta(rng, "fast", NS),
         "spec": {"receiveInterval": 100, "transmitInterval": 100, "detectMultiplier": 3}},
        # BGPPeer v1beta1 (deprecated but still served) and v1beta2 with FRR-only fields.
        {"apiVersion": mb, "kind": "BGPPeer", "metadata": _meta(rng, "tor-a", NS),
         "spec": {"myASN": 64512, "peerASN": 64500, "peerAddress": "192.168.100.1", "holdTime": "90s",
                  "nodeSelectors": [{"matchLabels": {"rack": "a"}}]}},
        {"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer", "metadata": _meta(rng, "tor-b", NS),
         "spec": {"myASN": 64512, "peerASN": 64501, "peerAddress": "192.168.101.1", "bfdProfile": "fast",
                  "ebgpMultiHop": True, "vrf": "red", "connectTime": "10s",
                  "passwordSecret": {"name": "tor-b-md5", "namespace": NS},
                  "nodeSelectors": [{"matchLabels": {"rack": "b"}}]}},
        {"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer", "metadata": _meta(rng, "rr", NS),
         "spec": {"myASN": 64512, "peerASN": 64512, "peerAddress": "2001:db8:ffff::1", "keepaliveTime": "10s",
                  "holdTime": "30s", "dualStackAddressFamily": True}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(rng, "bgpextras", NS),
         "data": {"extras": "router bgp 64512\n  bgp bestpath as-path multipath-relax\n"}},
        {"apiVersion": mb, "kind": "ServiceL2Status", "metadata": _meta(rng, "l2-x8k2p", NS),
         "status": {"node": "worker-001", "serviceName": "web-0001", "serviceNamespace": "shop"}},
        {"apiVersion": mb, "kind": "ConfigurationState", "metadata": _meta(rng, "controller", NS),
         "status": {"result": "Valid", "conditions": []}},
        {"apiVersion": "frrk8s.metallb.io/v1beta1", "kind": "FRRConfiguration",
         "metadata": _meta(rng, "metallb-worker-001", "frr-k8s-system"), "spec": {"bgp": {"routers": []}}},
    ]
    return objs


def _usable(net: str, avoid_buggy: bool) -> list[str]:
    out = []
    if "-" in net:
        a, b = (ipaddress.ip_address(x) for x in net.split("-"))
        rng = (ipaddress.ip_address(i) for i in range(int(a), int(b) + 1))
    else:
        rng = iter(ipaddress.ip_network(net))
    for ip in rng:
        if avoid_buggy and ip.version == 4 and int(ip) & 0xFF in (0, 255):
            continue
        out.append(str(ip))
    return out


def cluster_dump(n_services: int = 1000, seed: int = 7, pending: int = 0) -> tuple[str, str, dict[str, list[str]]]:
    """``(metallb_yaml, cluster_yaml, expected)``: the two dumps and, per Service key, its status addresses.

    ``pending`` extra Services without an address are added in the ``reserved-only`` namespace: they ask for the
    non-auto-assign pool by annotation and MetalLB could not serve them (the pool is full).
    """
    rng = random.Random(seed)
    cfg = config_objects(rng)
    general = _usable("10.10.0.0/22", True) + _usable("10.10.8.10-10.10.9.250", True)
    spare = _usable("172.20.0.0/24", False)
    team_a = _usable("10.20.0.0/25", False)
    dual4, dual6 = _usable("10.30.0.0/26", False), _usable("2001:db8:30::/120", False)
    reserved = _usable("192.0.2.0/28", False)
    free = {"general": general, "spare": spare, "team-a": team_a, "dual4": dual4, "dual6": dual6,
            "reserved": reserved}
    for lst in free.values():
        rng.shuffle(lst)

    namespaces = [("shop", {}), ("payments", {}), ("team-a", {"team": "a"}), ("team-a-staging", {"team": "a"}),
                  ("edge", {"stack": "dual"}), ("data", {}), ("monitoring", {}), ("reserved-only", {})]
    cluster: list[dict[str, Any]] = []
    for name, labels in namespaces:
        cluster.append({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": _meta(rng, name, None, labels={"kubernetes.io/metadata.name": name, **labels}),
                        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
    for i in range(1, 41):
        name = f"worker-{i:03d}"
        cluster.append({"apiVersion": "v1", "kind": "Node",
                        "metadata": _meta(rng, name, None, labels={
                            "kubernetes.io/hostname": name, "node-role.kubernetes.io/worker": "",
                            "rack": "a" if i % 2 else "b"}),
                        "spec": {"podCIDR": f"10.244.{i}.0/24"},
                        "status": {"conditions": [{"type": "Ready", "status": "True"},
                                                  {"type": "NetworkUnavailable", "status": "False"}],
                                   "addresses": [{"type": "InternalIP", "address": f"192.168.1.{i}"}]}})

    expected: dict[str, list[str]] = {}
    plain_ns = ["shop", "payments", "data", "monitoring"]
    for i in range(n_services):
        roll = rng.random()
        cluster_ips = [f"10.96.{(i >> 8) & 0xFF}.{i & 0xFF}"]
        annotations: dict[str, str] = {
            "kubectl.kubernetes.io/last-applied-configuration": json.dumps({"kind": "Service", "n": i}),
        }
        family_policy = "SingleStack"
        if roll < 0.05 and free["dual4"] and free["dual6"]:
            ns, ips, pool = "edge", [free["dual4"].pop(), free["dual6"].pop()], "dual"
            cluster_ips.append(f"fd00:96::{i:x}")
            family_policy = "RequireDualStack"
        elif roll < 0.15 and free["team-a"]:
            ns, ips, pool = rng.choice(["team-a", "team-a-staging"]), [free["team-a"].pop()], "team-a"
        elif roll < 0.17 and free["reserved"]:
            ns, ips, pool = "shop", [free["reserved"].pop()], "reserved"
            annotations["metallb.io/address-pool"] = "reserved"
        else:
            ns = rng.choice(plain_ns)
            pool = "general" if (rng.random() < 0.85 and free["general"]) else "spare"
            ips = [free[pool].pop()]
        name = f"svc-{i:04d}"
        annotations["metallb.io/ip-allocated-from-pool"] = pool
        if i % 97 == 0:
            annotations["metallb.universe.tf/allow-shared-ip"] = f"key-{i}"
        ports = [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080,
                  "nodePort": 30000 + (i % 2000)}]
        if i % 5 == 0:
            ports.append({"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53,
                          "nodePort": 32000 + (i % 700)})
        svc = {
            "apiVersion": "v1", "kind": "Service",
            "metadata": _meta(rng, name, ns, annotations=annotations, labels={"app": name},
                              managedFields=_managed("metallb-controller")),
            "spec": {"type": "LoadBalancer", "clusterIP": cluster_ips[0], "clusterIPs": cluster_ips,
                     "ipFamilies": ["IPv4", "IPv6"][: len(cluster_ips)], "ipFamilyPolicy": family_policy,
                     "externalTrafficPolicy": "Local" if i % 7 == 0 else "Cluster",
                     "allocateLoadBalancerNodePorts": True, "internalTrafficPolicy": "Cluster",
                     "selector": {"app": name}, "sessionAffinity": "None", "ports": ports},
            "status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"} for ip in ips]}},
        }
        cluster.append(svc)
        expected[f"{ns}/{name}"] = ips
    # Services MetalLB could not serve: the reserved pool they insist on is full.
    for j in range(pending):
        cluster.append({
            "apiVersion": "v1", "kind": "Service",
            "metadata": _meta(rng, f"waiting-{j}", "reserved-only",
                              annotations={"metallb.io/address-pool": "reserved"}),
            "spec": {"type": "LoadBalancer", "clusterIP": f"10.97.0.{j + 1}", "clusterIPs": [f"10.97.0.{j + 1}"],
                     "ipFamilyPolicy": "SingleStack", "ports": [{"port": 443, "protocol": "TCP"}]},
            "status": {"loadBalancer": {}},
        })
    # Noise: a ClusterIP Service, a Service of another load-balancer class, a Secret.
    cluster.append({"apiVersion": "v1", "kind": "Service", "metadata": _meta(rng, "kubernetes", "default"),
                    "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "ports": [{"port": 443}]},
                    "status": {"loadBalancer": {}}})
    cluster.append({"apiVersion": "v1", "kind": "Service", "metadata": _meta(rng, "other-lb", "shop"),
                    "spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/other",
                             "clusterIP": "10.96.255.1", "ports": [{"port": 443}]},
                    "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}})
    cluster.append({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth",
                    "metadata": _meta(rng, "tor-b-md5", NS), "data": {"password": "c2VjcmV0LW1kNQ=="}})
    rng.shuffle(cluster)  # kubectl prints by kind and name; the importer must not rely on any order

    def as_list(items: list[dict[str, Any]]) -> str:
        return yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}},
                              sort_keys=False)

    return as_list(cfg), as_list(cluster), expected
