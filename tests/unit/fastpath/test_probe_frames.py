"""Conflict probes (RFC 5227 §2.1.1 ARP probe, RFC 4862 §5.4.2 DAD solicitation), each twin against scapy's
independent construction of the same frame."""

from __future__ import annotations

import ipaddress

import pytest
from scapy.layers.inet6 import ICMPv6ND_NS, IPv6
from scapy.layers.l2 import ARP, Ether

MAC = bytes.fromhex("02005e100001")
MAC_TEXT = "02:00:5e:10:00:01"


@pytest.mark.parametrize("ip", ["192.0.2.7", "10.89.0.50", "255.255.255.254"])
def test_arp_probe_matches_scapy(l2impl, ip: str) -> None:
    want = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=MAC_TEXT) / ARP(
        op=1, hwsrc=MAC_TEXT, psrc="0.0.0.0", hwdst="00:00:00:00:00:00", pdst=ip))
    got = l2impl.build_arp_probe(MAC, int(ipaddress.IPv4Address(ip)))
    assert got == want and len(got) == 42


@pytest.mark.parametrize("ip", ["2001:db8::5", "fd00:89::1:2:3", "2001:db8:ffff:ffff:ffff:ffff:ffab:cdef"])
def test_ns_probe_matches_scapy(l2impl, ip: str) -> None:
    a = ipaddress.IPv6Address(ip)
    group = ipaddress.IPv6Address("ff02::1:ff00:0") + (int(a) & 0xFFFFFF)
    gmac = "33:33:" + ":".join(f"{b:02x}" for b in group.packed[12:])
    want = bytes(Ether(dst=gmac, src=MAC_TEXT) / IPv6(src="::", dst=str(group), hlim=255) / ICMPv6ND_NS(tgt=ip))
    got = l2impl.build_ns_probe(MAC, int(a))
    assert got == want and len(got) == 78
    assert l2impl.solicited_node(int(a)) == int(group)


def test_probes_check_their_arguments(l2impl) -> None:
    with pytest.raises(ValueError):
        l2impl.build_arp_probe(b"\x00" * 5, 1)
    with pytest.raises(ValueError):
        l2impl.build_arp_probe(MAC, 1 << 32)
    with pytest.raises(ValueError):
        l2impl.build_ns_probe(MAC, -1)
