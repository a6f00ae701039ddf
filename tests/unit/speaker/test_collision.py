"""RFC 4271 §6.8 connection collisions in the sans-I/O session: two connections to one peer (ours and the
peer's), driven by hand-written peer messages. The loser sends NOTIFICATION Cease/7 (RFC 4486)."""

from __future__ import annotations

import dataclasses

from fastpath.session import Session, State, collision_loser
from tests.unit.speaker.test_session import KEEPALIVE, cfg, notification_of, peer_open, split

LOW, HIGH = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x09"  # peer BGP Identifiers 10.0.0.1 and 10.0.0.9 (ours: 10.0.0.5)


def pair(now: float = 0.0) -> tuple[Session, Session]:
    """Our connection (dialled, OPEN sent) and the peer's (accepted, OPEN sent), both in OpenSent."""
    c = cfg(router_id="10.0.0.5")
    ours = Session(c, now)
    ours.connecting(now)
    ours.connection_made(now, "10.0.0.5")
    theirs = Session(dataclasses.replace(c, passive=True), now)
    theirs.connection_made(now, "10.0.0.5")
    ours.data_to_send(), theirs.data_to_send()
    return ours, theirs


def test_no_collision_before_the_peer_identifier_is_known() -> None:
    ours, theirs = pair()
    assert ours.state is theirs.state is State.OPEN_SENT
    assert collision_loser(ours, theirs) is None


def test_peer_with_higher_identifier_keeps_its_own_connection() -> None:
    ours, theirs = pair()
    theirs.receive(peer_open(rid=HIGH), 0.0)  # its OPEN on its connection: OpenConfirm there
    assert theirs.state is State.OPEN_CONFIRM
    assert collision_loser(ours, theirs) is ours  # known from one OPEN: OpenSent is examined too (the MAY)
    ours.close_collision(0.0)
    assert notification_of(ours.data_to_send()) == (6, 7) and ours.want_close
    assert [e.kind for e in ours.events()] == ["notification_sent", "collision"]
    theirs.receive(KEEPALIVE, 0.0)
    assert theirs.state is State.ESTABLISHED


def test_we_keep_ours_when_our_identifier_is_higher() -> None:
    ours, theirs = pair()
    ours.receive(peer_open(rid=LOW), 0.0)
    theirs.receive(peer_open(rid=LOW), 0.0)
    assert ours.state is theirs.state is State.OPEN_CONFIRM
    assert collision_loser(ours, theirs) is theirs
    theirs.close_collision(0.0)
    assert notification_of(theirs.data_to_send()) == (6, 7)


def test_both_sides_pick_the_same_connection() -> None:
    """Seen from the peer, our connection is its inbound one: each side keeps the connection the higher
    identifier initiated, so exactly one survives."""
    for peer_rid, survivor in ((HIGH, "peer's"), (LOW, "ours")):
        ours, theirs = pair()
        ours.receive(peer_open(rid=peer_rid), 0.0)
        loser = collision_loser(ours, theirs)
        kept = "ours" if loser is theirs else "peer's"
        # the peer's view: its outbound is our inbound; it compares its identifier with ours (10.0.0.5)
        peer_keeps_own = int.from_bytes(peer_rid, "big") > int.from_bytes(b"\x0a\x00\x00\x05", "big")
        assert kept == survivor == ("peer's" if peer_keeps_own else "ours")


def test_established_connection_wins_over_a_newcomer() -> None:
    ours, theirs = pair()
    ours.receive(peer_open(rid=HIGH) + KEEPALIVE, 0.0)
    assert ours.state is State.ESTABLISHED
    assert collision_loser(ours, theirs) is theirs  # although the peer's identifier is higher
    ours2, theirs2 = pair()
    theirs2.receive(peer_open(rid=LOW) + KEEPALIVE, 0.0)
    assert collision_loser(ours2, theirs2) is ours2


def test_equal_identifiers_fall_back_to_the_as_number() -> None:
    ours, theirs = pair()  # our AS 64512, the peer's 64513
    theirs.receive(peer_open(rid=b"\x0a\x00\x00\x05"), 0.0)
    assert collision_loser(ours, theirs) is ours


def test_closed_or_idle_connections_never_collide() -> None:
    ours, theirs = pair()
    theirs.receive(peer_open(rid=HIGH), 0.0)
    ours.connection_lost(0.0, "reset")
    assert ours.state is State.IDLE and collision_loser(ours, theirs) is None
    ours, theirs = pair()
    theirs.receive(peer_open(rid=HIGH), 0.0)
    theirs.close_collision(0.0)
    assert collision_loser(ours, theirs) is None  # already closing: decided once


def test_collision_close_before_open_sends_no_notification() -> None:
    s = Session(cfg(), 0.0)
    s.close_collision(0.0)
    assert split(s.data_to_send()) == [] and s.want_close


def test_the_loser_never_sends_its_pending_keepalive() -> None:
    """The KEEPALIVE answering the peer's OPEN is still queued when the collision is decided: it must not leave,
    or the peer would take the losing connection to Established and then see it closed (a flap)."""
    ours, theirs = pair()
    theirs.receive(peer_open(rid=LOW), 0.0)  # OpenConfirm: a KEEPALIVE is queued, not yet sent
    assert collision_loser(ours, theirs) is theirs
    theirs.close_collision(0.0)
    assert [t for t, _ in split(theirs.data_to_send())] == [3]  # the NOTIFICATION only
