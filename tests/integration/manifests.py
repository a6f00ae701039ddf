"""Kubernetes and MetalLB objects as YAML text, the way a user writes them, for the integration labs.

Each function returns one or two YAML documents; join them with ``docs``. The labs feed the text to
``events append`` (or to the fake API server), so what is tested is the real parsing and translation.
"""

from __future__ import annotations


def docs(*parts: str) -> str:
    """One multi-document YAML text from the given documents."""
    return "\n---\n".join(p.strip("\n") for p in parts) + "\n"


def node(name: str) -> str:
    """A Node labelled with its hostname (the label MetalLB's node selectors use)."""
    return f"""apiVersion: v1
kind: Node
metadata: {{name: {name}, labels: {{kubernetes.io/hostname: {name}}}}}"""


def pool(name: str, *addresses: str) -> str:
    """An IPAddressPool in metallb-system."""
    return f"""apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: {name}, namespace: metallb-system}}
spec: {{addresses: [{", ".join(addresses)}]}}"""


def l2_advertisement(name: str, *pools: str) -> str:
    """An L2Advertisement in metallb-system, of the named pools (of every pool when none is named)."""
    spec = f"\nspec: {{ipAddressPools: [{', '.join(pools)}]}}" if pools else ""
    return f"""apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: {name}, namespace: metallb-system}}{spec}"""


def service(name: str, cluster_ip: str, endpoint: str, node_name: str, *, namespace: str = "default",
            pool_name: str | None = None) -> str:
    """A LoadBalancer Service (port 80/TCP, single-stack of ``cluster_ip``'s family; from ``pool_name`` when given)
    and its EndpointSlice with one ready endpoint ``endpoint`` on ``node_name``."""
    family = "IPv6" if ":" in cluster_ip else "IPv4"
    meta = f"{{name: {name}, namespace: {namespace}}}"
    if pool_name:
        meta = f"{{name: {name}, namespace: {namespace}, annotations: {{metallb.io/address-pool: {pool_name}}}}}"
    return f"""apiVersion: v1
kind: Service
metadata: {meta}
spec:
  type: LoadBalancer
  clusterIP: "{cluster_ip}"
  clusterIPs: ["{cluster_ip}"]
  ipFamilies: [{family}]
  ports: [{{port: 80, protocol: TCP}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-x
  namespace: {namespace}
  labels: {{kubernetes.io/service-name: {name}}}
addressType: {family}
endpoints:
  - addresses: ["{endpoint}"]
    conditions: {{ready: true}}
    nodeName: {node_name}"""
