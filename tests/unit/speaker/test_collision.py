

def test_the_loser_never_sends_its_pending_keepalive() -> None:
    """The KEEPALIVE answering the peer's OPEN is still queued when the collision is decided: it must not leave,
    or the peer would take the losing connection to Established and then see it closed (a flap)."""
    ours, theirs = pair()
    theirs.receive(peer_open(rid=LOW), 0.0)  # OpenConfirm: a KEEPALIVE is queued, not yet sent
    assert collision_loser(ours, theirs) is theirs
    theirs.close_collision(0.0)
    assert [t for t, _ in split(theirs.data_to_send())] == [3]  # the NOTIFICATION only
