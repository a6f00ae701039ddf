"""The sans-I/O BGP session FSM, driven with a fake clock and hand-written peer messages."""

from __future__ import annotations

import struct

import pytest

from fastpath.session import Route, Session, SessionConfig, State

MARKER = b"\xff" * 16
KEEPALIVE = MARKER + b"\x00\x13\x04"


def split(data: bytes) -> list[tuple[int, bytes]]:
    """Independent framing: (type, body) of each message."""
    out = []
    while data:
        assert data[:16] == MARKER
        n, t = struct.unpack("!HB", data[16:19])
        out.append((t, data[19:n]))
        data = data[n:]
    return out


def peer_open(asn: int = 64513, hold: int = 90, rid: bytes = b"\x0a\x00\x00\x02", caps: bytes | None = None) -> bytes:
    if caps is None:
        caps = (
            b"\x01\x04\x00\x01\x00\x01"  # MP ipv4 unicast
            + b"\x01\x04\x00\x02\x00\x01"  # MP ipv6 unicast
            + b"\x02\x00"  # route refresh
            + b"\x41\x04" + struct.pack("!I", asn)
        )
    param = b"\x02" + bytes([len(caps)]) + caps
    body = struct.pack("!BHH4sB", 4, asn if asn < 65536 else 23456, hold, rid, len(param)) + param
    return MARKER + struct.pack("!HB", 19 + len(body), 1) + body


def notification_of(data: bytes) -> tuple[int, int]:
    msgs = [m for m in split(data) if m[0] == 3]
    assert len(msgs) == 1, msgs
    return msgs[0][1][0], msgs[0][1][1]


def cfg(**kw) -> SessionConfig:
    base = dict(local_as=64512, peer_as=64513, router_id="10.0.0.1", hold_time=90)
    base.update(kw)
    return SessionConfig(**base)


def establish(s: Session, now: float = 0.0, local: str = "10.0.0.1", **open_kw) -> bytes:
    assert s.connect_due(now)
    s.connecting(now)
    s.connection_made(now, local)
    out = s.data_to_send()
    s.receive(peer_open(**open_kw) + KEEPALIVE, now)
    assert s.state is State.ESTABLISHED, s.last_error
    return out + s.data_to_send()


def test_open_carries_capabilities_and_session_keepalive_after_peer_open() -> None:
    s = Session(cfg(local_as=4200000000, peer_as=64513), now=0.0)
    s.connecting(0.0)
    s.connection_made(0.0, "10.0.0.1")
    [(t, body)] = split(s.data_to_send())
    assert t == 1
    version, my_as, hold, rid, plen = struct.unpack("!BHH4sB", body[:10])
    assert (version, my_as, hold, rid) == (4, 23456, 90, b"\x0a\x00\x00\x01")
    caps = body[12:]
    assert b"\x41\x04" + struct.pack("!I", 4200000000) in caps  # 4-octet AS
    assert b"\x01\x04\x00\x01\x00\x01" in caps and b"\x01\x04\x00\x02\x00\x01" in caps
    assert b"\x02\x00" in caps and b"\x06\x00" in caps  # route refresh, extended message
    assert b"\x40" in caps  # graceful restart
    assert s.state is State.OPEN_SENT
    s.receive(peer_open(), 0.5)
    assert s.data_to_send() == KEEPALIVE
    assert s.state is State.OPEN_CONFIRM
    s.receive(KEEPALIVE, 0.6)
    assert s.state is State.ESTABLISHED
    assert [e.kind for e in s.events()] == ["established"]


def test_end_of_rib_sent_for_each_family_after_initial_sync() -> None:
    s = Session(cfg(), now=0.0)
    s.set_routes([Route("192.0.2.1/32")])
    out = establish(s)
    msgs = split(out)
    updates = [b for t, b in msgs if t == 2]
    # one announcement, then End-of-RIB for both negotiated families: IPv4 (an empty UPDATE) and IPv6 (an empty
    # MP_UNREACH) — also IPv6, where a v4 session has nothing to send, since a restart helper waits for all
    assert len(updates) == 3
    assert updates[0].endswith(b"\x20\xc0\x00\x02\x01")
    assert updates[1] == b"\x00\x00\x00\x00"
    assert updates[2] == bytes.fromhex("00000006" "800f03" "000201")


def test_hold_timer_expiry_sends_notification_4() -> None:
    s = Session(cfg(hold_time=9), now=0.0)
    establish(s, 0.0, hold=9)
    assert s.next_deadline() == pytest.approx(3.0)  # keepalive at hold/3
    s.tick(3.0)
    assert s.data_to_send() == KEEPALIVE
    s.tick(6.0)
    assert s.data_to_send() == KEEPALIVE
    s.tick(8.99)
    assert s.data_to_send() == b""
    s.tick(9.0)
    assert notification_of(s.data_to_send()) == (4, 0)
    assert s.want_close
    assert "hold timer expired" in s.last_error


def test_received_keepalive_restarts_hold_timer() -> None:
    s = Session(cfg(hold_time=9), now=0.0)
    establish(s, 0.0, hold=9)
    s.receive(KEEPALIVE, 8.0)
    s.tick(9.0)
    assert not s.want_close
    s.tick(17.0)
    assert s.want_close


def test_negotiated_hold_is_minimum_and_zero_disables_keepalives() -> None:
    s = Session(cfg(hold_time=90), now=0.0)
    establish(s, 0.0, hold=30)
    assert s.next_deadline() == pytest.approx(10.0)
    s2 = Session(cfg(hold_time=90), now=0.0)
    establish(s2, 0.0, hold=0)
    assert s2.next_deadline() is None
    s2.tick(1e6)
    assert s2.data_to_send() == b"" and not s2.want_close


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x00" * 16 + b"\x00\x13\x04", (1, 1)),  # marker not all ones
        (MARKER + b"\x00\x05\x04", (1, 2)),  # length below 19
        (MARKER + b"\x00\x13\x09", (1, 3)),  # unknown type
        (MARKER + b"\x00\x14\x04\x00", (1, 2)),  # KEEPALIVE with a body
        (MARKER + b"\x00\x17\x02\x00\x09\x00\x00", (3, 1)),  # UPDATE withdrawn length past the end
    ],
)
def test_garbage_in_established_maps_to_notification(data: bytes, expected: tuple[int, int]) -> None:
    s = Session(cfg(), now=0.0)
    establish(s)
    s.receive(data, 1.0)
    assert notification_of(s.data_to_send()) == expected
    assert s.want_close
    s.connection_lost(1.0, "closed after notification")
    assert s.state is State.IDLE
    assert s.last_error.startswith(f"NOTIFICATION sent: {expected[0]}/{expected[1]}")


def test_open_errors() -> None:
    s = Session(cfg(peer_as=64513), now=0.0)
    s.connecting(0)
    s.connection_made(0, "10.0.0.1")
    s.data_to_send()
    s.receive(peer_open(asn=65000), 0)
    assert notification_of(s.data_to_send()) == (2, 2)  # bad peer AS

    s = Session(cfg(), now=0.0)
    s.connecting(0)
    s.connection_made(0, "10.0.0.1")
    s.data_to_send()
    s.receive(peer_open(hold=2), 0)
    assert notification_of(s.data_to_send()) == (2, 6)  # unacceptable hold time

    s = Session(cfg(), now=0.0)
    s.connecting(0)
    s.connection_made(0, "10.0.0.1")
    s.data_to_send()
    s.receive(KEEPALIVE, 0)
    assert notification_of(s.data_to_send()) == (5, 1)  # FSM error: KEEPALIVE in OpenSent

    s = Session(cfg(local_as=4200000000), now=0.0)
    s.connecting(0)
    s.connection_made(0, "10.0.0.1")
    s.data_to_send()
    s.receive(peer_open(caps=b"\x01\x04\x00\x01\x00\x01"), 0)  # no 4-octet AS capability
    assert notification_of(s.data_to_send()) == (2, 2)


def test_garbage_split_across_reads_still_detected() -> None:
    s = Session(cfg(), now=0.0)
    establish(s)
    bad = MARKER + b"\x00\x13\x07"
    for i in range(len(bad)):
        s.receive(bad[i : i + 1], 1.0)
    assert notification_of(s.data_to_send()) == (1, 3)


def test_notification_from_peer_closes_and_records_error() -> None:
    s = Session(cfg(), now=0.0)
    establish(s)
    s.receive(MARKER + b"\x00\x15\x03\x06\x02", 2.0)
    assert s.want_close
    assert s.data_to_send() == b""
    assert "6/2 (Cease)" in s.last_error
    assert s.counters.notifications_in == 1


def test_reconnect_backoff_doubles_caps_and_resets_after_established() -> None:
    s = Session(cfg(backoff_initial=1.0, backoff_max=8.0), now=0.0)
    now = 0.0
    waits = []
    for _ in range(6):
        assert s.connect_due(now)
        s.connecting(now)
        assert not s.connect_due(now)
        s.connection_failed(now, "connection refused")
        due = s.next_deadline()
        waits.append(due - now)
        now = due
    assert waits == [0.0, 1.0, 2.0, 4.0, 8.0, 8.0]
    establish(s, now)
    s.connection_lost(now, "peer closed")
    assert s.next_deadline() == now  # first retry after a working session is immediate
    assert s.last_error == "peer closed"


def test_passive_session_never_asks_to_connect() -> None:
    s = Session(cfg(passive=True), now=0.0)
    assert not s.connect_due(0.0) and not s.connect_due(1e9)
    assert s.next_deadline() is None
    s.connection_made(5.0, "10.0.0.1")
    s.data_to_send()
    s.receive(peer_open() + KEEPALIVE, 5.0)
    assert s.state is State.ESTABLISHED
    s.connection_lost(6.0, "gone")
    assert s.state is State.ACTIVE and not s.connect_due(100.0)


def _updates(out: bytes) -> list[bytes]:
    return [b for t, b in split(out) if t == 2]


def _withdrawn_and_nlri(body: bytes) -> tuple[bytes, bytes]:
    wl = struct.unpack("!H", body[:2])[0]
    al = struct.unpack("!H", body[2 + wl : 4 + wl])[0]
    return body[2 : 2 + wl], body[4 + wl + al :]


def test_withdrawals_before_announcements_and_diffs_only() -> None:
    s = Session(cfg(), now=0.0)
    s.set_routes([Route("192.0.2.1/32"), Route("192.0.2.2/32")])
    establish(s)
    s.set_routes([Route("192.0.2.2/32"), Route("192.0.2.3/32")])
    ups = _updates(s.data_to_send())
    assert len(ups) == 2
    w0, n0 = _withdrawn_and_nlri(ups[0])
    w1, n1 = _withdrawn_and_nlri(ups[1])
    assert (w0, n0) == (b"\x20\xc0\x00\x02\x01", b"")
    assert (w1, n1) == (b"", b"\x20\xc0\x00\x02\x03")
    s.set_routes([Route("192.0.2.2/32"), Route("192.0.2.3/32")])
    assert s.data_to_send() == b""
    # an attribute change re-announces (implicit withdraw), no explicit withdrawal
    s.set_routes([Route("192.0.2.2/32", communities=("64512:100",)), Route("192.0.2.3/32")])
    ups = _updates(s.data_to_send())
    assert len(ups) == 1
    assert _withdrawn_and_nlri(ups[0]) == (b"", b"\x20\xc0\x00\x02\x02")
    assert b"\xc0\x08\x04\xfc\x00\x00\x64" in ups[0]


def test_ibgp_ebgp_attributes() -> None:
    s = Session(cfg(local_as=64512, peer_as=64512), now=0.0)
    s.set_routes([Route("10.20.30.1/32")])
    out = establish(s, local="10.0.0.5", asn=64512)
    # metallb-behaviour.md §6.7 iBGP vector (LOCAL_PREF 100 when unset)
    vec = bytes.fromhex("0000001540010100400200400304" "0a000005" "400504" "00000064" "200a141e01")
    assert _updates(out)[0] == vec
    s = Session(cfg(local_as=4200000000, peer_as=64513), now=0.0)
    s.set_routes([Route("198.51.100.0/24")])
    out = establish(s, local="10.0.0.5")
    vec = bytes.fromhex("000000144001010040020602" "01fa56ea00" "4003040a000005" "18c63364")
    assert _updates(out)[0] == vec


def test_packing_fills_4096_byte_updates() -> None:
    s = Session(cfg(extended_message=False), now=0.0)
    routes = [Route(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}/32", communities=("64512:1",)) for i in range(2000)]
    s.set_routes(routes)
    out = establish(s)
    msgs = split(out)
    ups = [b for t, b in msgs if t == 2][:-1]  # drop End-of-RIB
    assert all(19 + len(b) <= 4096 for b in ups)
    counts = [len(_withdrawn_and_nlri(b)[1]) // 5 for b in ups]
    assert sum(counts) == 2000
    assert counts[0] == 809  # with ORIGIN, 4-octet AS_PATH, NEXT_HOP and one community: 27 attribute bytes


def test_ipv6_routes_go_in_mp_reach_and_shutdown_ceases_without_withdrawals() -> None:
    s = Session(cfg(), now=0.0)
    s.set_routes([Route("2001:db8::1/128"), Route("192.0.2.1/32")])
    out = establish(s, local="2001:db8::10")
    ups = _updates(out)
    # v6 session: only IPv6 prefixes (no IPv4 next hop known), then End-of-RIB for IPv4 and IPv6
    assert len(ups) == 3
    assert (b"\x80\x0e" in ups[0] or b"\x90\x0e" in ups[0]) and bytes.fromhex("20010db8000000000000000000000010") in ups[0]
    assert ups[1:] == [b"\x00\x00\x00\x00", bytes.fromhex("00000006" "800f03" "000201")]
    # the NOTIFICATION alone ends the session; the peer deletes its routes (no N bit: not a graceful restart)
    s.set_routes([Route("2001:db8::2/128")])  # queued, never sent: moot once the session ends
    s.shutdown(1.0, withdraw=True)
    msgs = split(s.data_to_send())
    assert [t for t, _ in msgs] == [3]
    assert msgs[0][1][:2] == b"\x06\x02"
    assert s.want_close


def test_shutdown_without_withdraw_sends_nothing() -> None:
    s = Session(cfg(), now=0.0)
    s.set_routes([Route("192.0.2.1/32")])
    establish(s)
    s.shutdown(1.0, withdraw=False)
    assert s.data_to_send() == b"" and s.want_close


def test_route_refresh_resends_family() -> None:
    s = Session(cfg(), now=0.0)
    s.set_routes([Route("192.0.2.1/32"), Route("192.0.2.9/32")])
    establish(s)
    s.receive(MARKER + b"\x00\x17\x05\x00\x01\x00\x01", 1.0)
    ups = _updates(s.data_to_send())
    assert [_withdrawn_and_nlri(u)[1] for u in ups] == [b"\x20\xc0\x00\x02\x01\x20\xc0\x00\x02\x09"]


def test_reconnect_readvertises_everything() -> None:
    s = Session(cfg(), now=0.0)
    s.set_routes([Route("192.0.2.1/32")])
    establish(s)
    s.connection_lost(1.0, "reset")
    assert s.advertised == {}
    out = establish(s, 1.0)
    assert _withdrawn_and_nlri(_updates(out)[0])[1] == b"\x20\xc0\x00\x02\x01"


def test_graceful_restart_capability_r_bit() -> None:
    s = Session(cfg(restarting=True, restart_time=120), now=0.0)
    s.connecting(0)
    s.connection_made(0, "10.0.0.1")
    body = split(s.data_to_send())[0][1]
    i = body.index(b"\x40\x0a")  # GR capability with two AFI entries (2 + 2*4 bytes)
    flags_time = struct.unpack("!H", body[i + 2 : i + 4])[0]
    assert flags_time == 0x8000 | 120


def _run(prepare: bool, change_between: bool = False, local_as: int = 4200000000, **open_kw) -> bytes:
    s = Session(cfg(local_as=local_as), now=0.0)
    s.set_routes([Route(f"10.1.{i // 256}.{i % 256}/32", communities=("64512:1",)) for i in range(1500)]
                 + [Route("10.9.0.0/24", local_pref=200)])
    s.connecting(0.0)
    s.connection_made(0.0, "10.0.0.1")
    out = s.data_to_send()
    if prepare:
        s.prepare()
    if change_between:
        s.set_routes([Route("10.7.0.1/32")])
    s.receive(peer_open(**open_kw) + KEEPALIVE, 0.1)
    assert s.state is State.ESTABLISHED
    return out + s.data_to_send()


def test_prepared_initial_table_is_byte_identical_to_packing_at_established() -> None:
    assert _run(True) == _run(False)
    assert _run(True, change_between=True) == _run(False, change_between=True)
    # a peer without 4-octet AS: the prepared UPDATEs (4-byte AS_PATH) must not be used
    caps = b"\x01\x04\x00\x01\x00\x01"
    two = _run(True, local_as=64512, caps=caps, asn=64513)
    assert two == _run(False, local_as=64512, caps=caps, asn=64513)
    assert b"\x40\x02\x04\x02\x01\xfc\x00" in two  # AS_PATH with one 2-octet ASN
    assert b"\x40\x02\x06\x02\x01\x00\x00\xfc\x00" not in two


def _run_prepacked(packed_for: str, connect_from: str, change_between: bool = False) -> tuple[bytes, bool]:
    s = Session(cfg(local_as=4200000000), now=0.0)
    s.set_routes([Route(f"10.1.{i // 256}.{i % 256}/32", communities=("64512:1",)) for i in range(1500)]
                 + [Route("10.9.0.0/24", local_pref=200)])
    s.prepack(packed_for)  # before connecting, as the speaker does off its event loop
    if change_between:
        s.set_routes([Route("10.7.0.1/32")])
    s.connecting(0.0)
    s.connection_made(0.0, connect_from)
    out = s.data_to_send()
    s.prepare()
    used = s._prepared is not None and s._prepacked is not None and s._prepared[2] is s._prepacked[3]
    s.receive(peer_open() + KEEPALIVE, 0.1)
    assert s.state is State.ESTABLISHED
    return out + s.data_to_send(), used


def test_a_table_packed_before_connecting_is_byte_identical_and_used_only_when_it_fits() -> None:
    reference = _run(False)
    same, used = _run_prepacked("10.0.0.1", "10.0.0.1")
    assert used and same == reference
    other, used = _run_prepacked("10.0.0.9", "10.0.0.1")  # the connection came from another address
    assert not used and other == reference
    changed, used = _run_prepacked("10.0.0.1", "10.0.0.1", change_between=True)
    assert not used and changed == _run(False, change_between=True)
