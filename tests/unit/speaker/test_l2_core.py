"""Sans-I/O parts of the L2 speaker: gratuitous schedule (fake clock), fair rate limit, responder answers,
and sendmmsg batching over a socketpair."""

from __future__ import annotations

import socket
import struct

import pytest

from fastpath.emit import rawsock
from fastpath.emit.l2 import FairLimiter, GarpScheduler, Interface, Responder

MAC = bytes.fromhex("020000000001")
CLIENT_MAC = bytes.fromhex("02000000aaaa")
IFACE = Interface("eth0", 2, MAC, None)
IFACE6 = Interface("eth0", 2, MAC, 0xFE80 << 112 | 0x1)


def run_schedule(s: GarpScheduler, until: float) -> list[tuple[float, str]]:
    """Wake at each deadline the scheduler asks for, as the shell does."""
    out = []
    for _ in range(1000):
        t = s.next_deadline()
        if t is None or t > until:
            break
        for ip in s.due(t):
            out.append((round(t, 6), ip))
    return out


def test_single_trigger_gives_five_bursts_on_1_1s_ticks() -> None:
    s = GarpScheduler()
    assert s.trigger("10.0.0.1", 0.0) is True  # immediate burst
    later = run_schedule(s, 10.0)
    assert later == [(1.1, "10.0.0.1"), (2.2, "10.0.0.1"), (3.3, "10.0.0.1"), (4.4, "10.0.0.1")]
    assert s.next_deadline() is None


def test_retrigger_extends_window_without_extra_immediate_burst() -> None:
    s = GarpScheduler()
    assert s.trigger("10.0.0.1", 0.0)
    assert s.due(1.1) == ["10.0.0.1"]
    assert s.trigger("10.0.0.1", 2.0) is False  # already being announced: no immediate burst
    times = [t for t, _ in run_schedule(s, 10.0) if t > 1.1]
    assert times == [2.2, 3.3, 4.4, 5.5, 6.6]  # window now ends at 7.0


def test_cancel_stops_bursts() -> None:
    s = GarpScheduler()
    s.trigger("10.0.0.1", 0.0)
    s.cancel("10.0.0.1")
    assert run_schedule(s, 6.0) == []
    assert s.trigger("10.0.0.1", 7.0) is True


def test_late_wakeup_sends_one_burst_not_a_backlog() -> None:
    s = GarpScheduler()
    s.trigger("10.0.0.1", 0.0)
    assert s.due(3.5) == ["10.0.0.1"]
    assert s.due(3.6) == []
    assert s.due(4.4) == ["10.0.0.1"]


def test_fair_limiter_serves_ips_round_robin_at_the_rate() -> None:
    lim = FairLimiter(rate=15, now=0.0)
    for i in range(10):
        lim.put(f"10.0.0.{i}", [b"req%d" % i, b"rep%d" % i])
    first = lim.take(0.0)
    assert len(first) == 15  # the bucket starts full
    # one frame per IP before any IP gets its second
    assert [ip for ip, _ in first[:10]] == [f"10.0.0.{i}" for i in range(10)]
    assert [f for _, f in first[:10]] == [b"req%d" % i for i in range(10)]
    assert lim.take(0.0) == []
    assert len(lim.take(1 / 15)) == 1
    rest = lim.take(10.0)
    assert len(rest) == 4 and lim.pending() == 0


def test_fair_limiter_drop_forgets_withdrawn_ip() -> None:
    lim = FairLimiter(rate=1, now=0.0)
    lim.put("10.0.0.1", [b"a", b"b"])
    lim.put("10.0.0.2", [b"c"])
    assert lim.take(0.0) == [("10.0.0.1", b"a")]
    lim.drop("10.0.0.1")
    assert lim.take(5.0) == [("10.0.0.2", b"c")]


def arp_request(target: str, eth_dst: bytes = b"\xff" * 6, op: int = 1) -> bytes:
    return (
        eth_dst + CLIENT_MAC + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, op)
        + CLIENT_MAC + socket.inet_aton("10.0.0.99") + b"\x00" * 6 + socket.inet_aton(target)
    )


def test_responder_answers_owned_ip_only_with_unicast_reply() -> None:
    r = Responder()
    r.set_interfaces({"eth0": IFACE})
    r.announce("10.0.0.5")
    reply = r.answer(IFACE, arp_request("10.0.0.5"))
    assert reply is not None
    assert reply[0:6] == CLIENT_MAC and reply[6:12] == MAC and reply[12:14] == b"\x08\x06"
    assert struct.unpack("!H", reply[20:22])[0] == 2
    assert reply[22:28] == MAC and reply[28:32] == socket.inet_aton("10.0.0.5")
    assert reply[32:38] == CLIENT_MAC and reply[38:42] == socket.inet_aton("10.0.0.99")
    assert r.answer(IFACE, arp_request("10.0.0.6")) is None
    assert r.counters.dropped == {"notAnnounced": 1}
    assert r.answer(IFACE, arp_request("10.0.0.5", op=2)) is None  # replies are not answered
    assert r.answer(IFACE, arp_request("10.0.0.5", eth_dst=bytes.fromhex("02ffffffffff"))) is None
    r.withdraw("10.0.0.5")
    assert r.answer(IFACE, arp_request("10.0.0.5")) is None
    assert r.counters.responses_sent == 1


def test_responder_respects_allowed_interfaces() -> None:
    other = Interface("eth1", 3, bytes.fromhex("020000000002"), None)
    r = Responder()
    r.set_interfaces({"eth0": IFACE, "eth1": other})
    r.announce("10.0.0.5", ("eth1",))
    assert r.answer(IFACE, arp_request("10.0.0.5")) is None
    assert r.answer(other, arp_request("10.0.0.5", eth_dst=b"\xff" * 6)) is not None
    assert [i.name for i in r.interfaces_for("10.0.0.5")] == ["eth1"]


def test_burst_frames_are_request_then_reply_gratuitous() -> None:
    r = Responder()
    fs = r.burst_frames("192.168.1.10", IFACE)
    assert [struct.unpack("!H", f[20:22])[0] for f in fs] == [1, 2]
    for f in fs:
        assert len(f) == 42 and f[0:6] == b"\xff" * 6
        assert f[28:32] == f[38:42] == socket.inet_aton("192.168.1.10")
        assert f[32:38] == b"\xff" * 6
    (na,) = r.burst_frames("2001:db8::5", IFACE6)
    assert na[0:6] == bytes.fromhex("333300000001") and na[54] == 136


def test_batch_sender_sends_each_frame_as_one_datagram_in_one_call() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        b.setblocking(False)
        sender = rawsock.BatchSender(capacity=2)
        buf = bytearray(b"".join(bytes([i]) * 42 for i in range(5)))
        assert sender.send(a, buf, 42, 5) == 5
        assert sender.syscalls == 1
        got = [b.recv(100) for _ in range(5)]
        assert got == [bytes([i]) * 42 for i in range(5)]
        assert sender.send_frames(a, [b"x" * 10, b"y" * 86]) == 2
        assert [b.recv(100), b.recv(100)] == [b"x" * 10, b"y" * 86]
        with pytest.raises(ValueError):
            sender.send(a, buf, 42, 6)
    finally:
        a.close()
        b.close()


def test_solicited_node_mac() -> None:
    assert rawsock.solicited_node_mac(0x20010DB8000000000000000000ABCDEF) == bytes.fromhex("3333ffabcdef")
