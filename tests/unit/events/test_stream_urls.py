"""Redis URL forms, TLS options and credentials (events/stream.py), without a server: the clients are built
lazily, so their settings can be read back. Connections to real TLS servers are tested in
tests/integration/test_redis_acl_tls.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from events import stream

TLS = "ssl_ca_certs=/ca.crt&ssl_certfile=/c.crt&ssl_keyfile=/c.key"


@pytest.fixture(autouse=True)
def _no_env_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("STREAMLB_REDIS_USERNAME", "STREAMLB_REDIS_PASSWORD", "STREAMLB_REDIS_PASSWORD_FILE"):
        monkeypatch.delenv(k, raising=False)


def kwargs(client) -> dict:
    return client.connection_pool.connection_kwargs


def test_hosts_parse_user_password_and_ipv6() -> None:
    assert stream._hosts("u:p%40ss@h1:1,[::1]:2,h3", 26379) == ("u", "p@ss", [("h1", 1), ("::1", 2), ("h3", 26379)])
    assert stream._hosts(":pw@h", 6379) == (None, "pw", [("h", 6379)])
    assert stream._hosts("pw@h", 6379) == (None, "pw", [("h", 6379)])
    assert stream._hosts("h:7", 6379) == (None, None, [("h", 7)])


def test_rediss_url_carries_ca_and_client_certificate() -> None:
    c = stream.connect(f"rediss://u:p@127.0.0.1:6380/0?{TLS}&ssl_cert_reqs=required")
    kw = kwargs(c)
    assert c.connection_pool.connection_class.__name__ == "SSLConnection"
    assert (kw["ssl_ca_certs"], kw["ssl_certfile"], kw["ssl_keyfile"]) == ("/ca.crt", "/c.crt", "/c.key")
    assert kw["username"] == "u" and kw["password"] == "p" and kw["driver_info"] is None


def test_sentinel_over_tls_uses_tls_to_the_sentinels_and_to_the_master() -> None:
    c = stream.connect(f"rediss+sentinel://streamlb-speaker:pw@s1:26380,s2:26380/mymaster/2?{TLS}"
                       "&sentinel_username=su&sentinel_password=sp")
    pool = c.connection_pool
    kw = kwargs(c)
    assert pool.connection_class.__name__ == "SentinelManagedSSLConnection"
    assert kw["username"] == "streamlb-speaker" and kw["password"] == "pw" and kw["db"] == 2
    assert kw["ssl_ca_certs"] == "/ca.crt" and kw["ssl_certfile"] == "/c.crt"
    for s in pool.sentinel_manager.sentinels:
        skw = s.connection_pool.connection_kwargs
        assert s.connection_pool.connection_class.__name__ == "SSLConnection"
        assert skw["ssl_ca_certs"] == "/ca.crt" and skw["username"] == "su" and skw["password"] == "sp"
    plain = stream.connect("redis+sentinel://s1:26379/mymaster")
    assert plain.connection_pool.connection_class.__name__ == "SentinelManagedConnection"


def test_credentials_from_the_environment_when_the_url_has_none(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STREAMLB_REDIS_USERNAME", "streamlb-producer")
    (tmp_path / "pw").write_text("s3cret\n")
    monkeypatch.setenv("STREAMLB_REDIS_PASSWORD_FILE", str(tmp_path / "pw"))
    kw = kwargs(stream.connect("redis://127.0.0.1:6379/0"))
    assert (kw["username"], kw["password"]) == ("streamlb-producer", "s3cret")
    # the URL's own credentials win, and are never mixed with the environment's
    kw = kwargs(stream.connect("redis://:urlpw@127.0.0.1:6379/0"))
    assert kw.get("username") is None and kw["password"] == "urlpw"
    s = stream.connect("redis+sentinel://h:1/m")
    assert kwargs(s)["username"] == "streamlb-producer" and kwargs(s)["password"] == "s3cret"
    monkeypatch.setenv("STREAMLB_REDIS_PASSWORD", "direct")
    assert kwargs(stream.connect("unix:///tmp/x.sock"))["password"] == "direct"


def test_unreadable_password_file_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setenv("STREAMLB_REDIS_PASSWORD_FILE", "/nonexistent/pw")
    with pytest.raises(ValueError, match="STREAMLB_REDIS_PASSWORD_FILE /nonexistent/pw"):
        stream.connect("redis://127.0.0.1:6379/0")


@pytest.mark.parametrize("query, needle", [("ssl_cert_reqs=maybe", "ssl_cert_reqs must be"),
                                           ("ssl_check_hostname=perhaps", "ssl_check_hostname must be")])
def test_bad_tls_options_are_refused_with_the_password_redacted(query: str, needle: str) -> None:
    for scheme in ("rediss", "rediss+sentinel", "rediss+cluster"):
        with pytest.raises(ValueError, match=needle) as ei:
            stream.connect(f"{scheme}://u:topsecret@h:1/m?{query}")
        assert "topsecret" not in str(ei.value) and "u:***@" in str(ei.value)


def test_forbidden_message_names_command_key_user_and_role() -> None:
    k = stream.Keys("c")
    m = stream.forbidden_message("this user has no permissions to run the 'xadd' command", "XADD", k.events,
                                 "streamlb-speaker")
    assert m.startswith(f"Redis refused XADD on {k.events} to user 'streamlb-speaker' (NOPERM): ")
    assert "producer or reconciler role (streamlb-producer, streamlb-reconciler)" in m
    # a key refusal does not name the command in Redis's text: the caller's is used
    m = stream.forbidden_message("this user has no permissions to access one of the keys used as arguments",
                                 "SET", k.leader, "streamlb-speaker")
    assert m.startswith(f"Redis refused SET on {k.leader} ") and "reconciler role" in m
    m = stream.forbidden_message("this user has no permissions to run the 'flushall' command", "X", None, "u")
    assert "Redis refused FLUSHALL to user 'u'" in m and "no streamlb role may do that" in m
