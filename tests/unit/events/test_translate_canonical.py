"""Law: whatever ``kube.translate`` / ``kube.reference`` accept is canonical (``codec.validate`` passes), so the
replay input path need not re-check translated objects (events/inputs.py). Random watch objects with messy
addresses (leading zeros, upper-case and uncompressed IPv6, spaces, zones, garbage), label maps and ports."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from events import codec, kube, schema

octet = st.one_of(st.integers(0, 255).map(str), st.integers(0, 300).map(lambda v: f"0{v}"), st.just("1a"))
ipv4_texts = st.tuples(octet, octet, octet, octet).map(".".join)
ipv6_texts = st.one_of(
    st.integers(0, 2**128 - 1).map(lambda v: ":".join(f"{(v >> (16 * i)) & 0xFFFF:04X}" for i in range(8))),
    st.sampled_from(["fd00::1", "FD00:0::01", "::", "::ffff:1.2.3.4", "fe80::1%eth0", "fd00:::1", "2001:db8::"]),
)
addresses = st.one_of(ipv4_texts, ipv6_texts, ipv4_texts.map(lambda t: f" {t} "), st.text(max_size=8))
names = st.from_regex(r"[a-z]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True) | st.just("")
labels = st.dictionaries(st.text(min_size=1, max_size=6), st.text(max_size=6), max_size=4)


def meta(namespaced: bool):
    return st.fixed_dictionaries({"name": names, "labels": labels,
                                  **({"namespace": names} if namespaced else {})},
                                 optional={"annotations": labels})


services = st.fixed_dictionaries({
    "apiVersion": st.just("v1"), "kind": st.just("Service"), "metadata": meta(True),
    "spec": st.fixed_dictionaries({
        "type": st.sampled_from(["LoadBalancer", "ClusterIP"]),
        "clusterIPs": st.lists(st.one_of(addresses, st.just("None")), max_size=2),
        "selector": labels,
        "ports": st.lists(st.fixed_dictionaries({"port": st.integers(-5, 70000)}), max_size=2),
    }),
    "status": st.fixed_dictionaries({"loadBalancer": st.fixed_dictionaries({
        "ingress": st.lists(st.fixed_dictionaries({"ip": addresses}), max_size=2)})}),
})
slices = st.fixed_dictionaries({
    "apiVersion": st.just("discovery.k8s.io/v1"), "kind": st.just("EndpointSlice"), "metadata": meta(True),
    "addressType": st.sampled_from(["IPv4", "IPv6", "FQDN"]),
    "endpoints": st.lists(st.fixed_dictionaries({"addresses": st.lists(addresses, max_size=2),
                                                 "nodeName": names}), max_size=3),
})
nodes = st.fixed_dictionaries({
    "apiVersion": st.just("v1"), "kind": st.just("Node"), "metadata": meta(False),
    "status": st.fixed_dictionaries({"addresses": st.lists(st.fixed_dictionaries({
        "type": st.sampled_from(["InternalIP", "ExternalIP", "Hostname"]), "address": addresses}), max_size=3)}),
})
namespaces = st.fixed_dictionaries({"apiVersion": st.just("v1"), "kind": st.just("Namespace"),
                                    "metadata": meta(False)})


@settings(max_examples=300, deadline=None)
@given(st.one_of(services, slices, nodes, namespaces))
def test_what_translate_accepts_is_canonical(obj) -> None:
    try:
        got = kube.translate(obj)
    except kube.TranslateError:
        return
    if isinstance(got, kube.Ignored):
        return
    codec.validate(schema.K8sUpsert(obj=got))  # raises DecodeError if not canonical


@settings(max_examples=100, deadline=None)
@given(st.one_of(services, slices, nodes, namespaces))
def test_what_reference_accepts_is_canonical(obj) -> None:
    try:
        ref = kube.reference(obj)
    except kube.TranslateError:
        return
    if isinstance(ref, kube.Ignored):
        return
    codec.validate(schema.K8sDelete(ref=ref))
