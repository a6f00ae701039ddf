"""Redis key layout (design.md §2) and URL forms of the stream adapter; no server needed."""

from __future__ import annotations

import pytest
import redis
import redis.sentinel

from events import stream


def test_keys_follow_the_design_layout_with_the_cluster_in_braces() -> None:
    k = stream.Keys("prod")
    assert k.events == "streamlb:{prod}:events"
    assert k.snapshot == "streamlb:{prod}:snapshot"
    assert k.deadletter == "streamlb:{prod}:deadletter"
    assert k.decisions == "streamlb:{prod}:decisions"
    assert k.leader == "streamlb:{prod}:leader"
    assert k.speaker("node-a") == "streamlb:{prod}:speaker:node-a"


def test_all_keys_of_a_cluster_share_one_redis_cluster_slot() -> None:
    from redis.crc import key_slot

    k = stream.Keys("prod")
    slots = {key_slot(x.encode()) for x in (k.events, k.snapshot, k.deadletter, k.decisions, k.leader, k.speaker("n"))}
    assert len(slots) == 1


@pytest.mark.parametrize("bad", ["", "a{b", "c}"])
def test_cluster_names_with_braces_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        stream.StreamLog(redis.Redis(), bad)


def test_plain_tls_and_password_urls_go_through_redis_py() -> None:
    c = stream.connect("rediss://:s3cret@example.invalid:6380/2?ssl_cert_reqs=none")
    kw = c.connection_pool.connection_kwargs
    assert (kw["host"], kw["port"], kw["db"], kw["password"]) == ("example.invalid", 6380, 2, "s3cret")
    assert c.connection_pool.connection_class.__name__ == "SSLConnection"


def test_sentinel_url_names_hosts_service_and_db() -> None:
    c = stream.connect("redis+sentinel://:pw@10.0.0.1:26379,[::1]:26380/mymaster/3")
    pool = c.connection_pool
    assert isinstance(pool, redis.sentinel.SentinelConnectionPool)
    assert pool.service_name == "mymaster"
    assert pool.connection_kwargs["db"] == 3 and pool.connection_kwargs["password"] == "pw"
    hosts = [(s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
             for s in pool.sentinel_manager.sentinels]
    assert hosts == [("10.0.0.1", 26379), ("::1", 26380)]


def test_sentinel_url_without_service_is_refused() -> None:
    with pytest.raises(ValueError, match="service name"):
        stream.connect("redis+sentinel://127.0.0.1:26379")
