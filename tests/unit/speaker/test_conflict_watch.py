"""The sans-I/O core of address-conflict probing: schedule, rate limit, what a received frame means."""

from __future__ import annotations

import ipaddress

import pytest
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether

from fastpath.emit.probe import ConflictWatch

OURS = bytes.fromhex("02005e100001")
OTHER = "02:00:5e:99:00:09"


def arp_reply(ip: str, mac: str = OTHER, op: int = 2) -> bytes:
    """What Linux sends to answer a probe for an address it has: sender = (its MAC, the address), target IP 0."""
    return bytes(Ether(dst="02:00:5e:10:00:01", src=mac) / ARP(op=op, hwsrc=mac, psrc=ip, hwdst="02:00:5e:10:00:01",
                                                                pdst="0.0.0.0"))


def na(target: str, mac: str = OTHER, with_option: bool = True) -> bytes:
    p = Ether(dst="33:33:00:00:00:01", src=mac) / IPv6(src="fe80::99", dst="ff02::1", hlim=255) / ICMPv6ND_NA(
        tgt=target, R=0, S=0, O=1)
    if with_option:
        p = p / ICMPv6NDOptDstLLAddr(lladdr=mac)
    return bytes(p)


def watch(*ips: str, **kw) -> ConflictWatch:
    w = ConflictWatch(**kw)
    w.our_macs = {OURS}
    w.set_owned(ips, 0.0)
    return w


def test_other_host_answering_arp_is_a_conflict_with_first_and_last_seen() -> None:
    w = watch("10.89.0.50", "10.89.0.51")
    assert w.observe("eth0", arp_reply("10.89.0.50"), 1000.0) is not None
    w.observe("eth0", arp_reply("10.89.0.50"), 1010.0)
    assert w.to_json() == [{"ip": "10.89.0.50", "mac": OTHER, "interface": "eth0",
                            "first_seen": "1970-01-01T00:16:40Z", "last_seen": "1970-01-01T00:16:50Z"}]


@pytest.mark.parametrize("frame", [
    arp_reply("10.89.0.52"),  # not an address we own
    arp_reply("10.89.0.50", mac="02:00:5e:10:00:01"),  # our own MAC
    arp_reply("10.89.0.50")[:30],  # truncated
    na("2001:db8::9"),  # IPv6 address we do not own
])
def test_frames_that_are_not_conflicts(frame: bytes) -> None:
    w = watch("10.89.0.50", "2001:db8::5")
    assert w.observe("eth0", frame, 1.0) is None
    assert w.to_json() == []


def test_gratuitous_arp_from_another_host_counts_too() -> None:
    w = watch("10.89.0.50")
    assert w.observe("eth0", arp_reply("10.89.0.50", op=1), 5.0) is not None


def test_neighbor_advertisement_names_the_target_link_layer_address() -> None:
    w = watch("2001:db8::5")
    c = w.observe("eth1", na("2001:db8::5", mac="02:00:5e:99:00:0a"), 7.0)
    assert c is not None and c.mac == "02:00:5e:99:00:0a" and c.ip == "2001:db8::5"
    w2 = watch("2001:db8::5")
    assert w2.observe("eth1", na("2001:db8::5", with_option=False), 7.0).mac == OTHER  # falls back to the source


def test_conflicts_are_forgotten_when_not_seen_or_no_longer_owned() -> None:
    w = watch("10.89.0.50", "10.89.0.51", interval=10.0)
    w.observe("eth0", arp_reply("10.89.0.50"), 100.0)
    w.observe("eth0", arp_reply("10.89.0.51"), 100.0)
    w.expire(129.0)
    assert len(w.to_json()) == 2
    w.expire(131.0)  # 3 intervals without a sighting
    assert w.to_json() == []
    w.observe("eth0", arp_reply("10.89.0.50"), 200.0)
    w.set_owned(["10.89.0.51"], 0.0)
    assert w.to_json() == []


def test_schedule_probes_each_ip_once_per_interval_within_the_rate() -> None:
    ips = [str(ipaddress.IPv4Address("10.0.0.0") + i) for i in range(50)]
    w = watch(*ips, interval=30.0, rate=10.0)
    first = w.due(0.0)
    assert len(first) == 10  # the bucket holds one second of frames
    assert w.due(0.0) == []
    sent = list(first)
    t = 0.0
    while t < 4.0:
        t += 0.5
        sent += w.due(t)
    assert len(sent) == 50 and sorted(set(sent)) == sorted(ips)  # everything once, at 10/s
    assert w.due(20.0) == []  # nobody is due again before the interval
    assert len(w.due(30.0)) == 10
    w2 = watch("10.0.0.1", interval=5.0, rate=100.0)
    assert w2.due(0.0, frames_per_ip=3) == ["10.0.0.1"]  # three interfaces cost three frames
    assert w2.next_deadline() == 5.0


def test_new_ips_are_due_at_once_and_dropped_ones_never() -> None:
    w = watch("10.0.0.1", interval=60.0)
    assert w.due(0.0) == ["10.0.0.1"]
    w.set_owned(["10.0.0.1", "10.0.0.2"], 1.0)
    assert w.due(1.0) == ["10.0.0.2"]
    w.set_owned(["10.0.0.2"], 2.0)
    assert w.due(61.5) == ["10.0.0.2"]
