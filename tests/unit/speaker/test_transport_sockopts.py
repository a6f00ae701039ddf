"""Socket-level settings of the BGP transport: TCP MD5 option layout, TTL per session type (no network)."""

from __future__ import annotations

import socket
import struct

import pytest

from fastpath.emit.bgp import TCP_MD5SIG, PeerSpec, PeerTransport, md5sig_option
from fastpath.session import SessionConfig


def test_md5sig_option_layout_ipv4_and_ipv6() -> None:
    opt = md5sig_option("192.0.2.7", "secret")
    assert len(opt) == 128 + 4 + 4 + 80  # sockaddr_storage, flags/prefixlen/keylen, ifindex, key
    family = struct.unpack("=H", opt[0:2])[0]
    assert family == socket.AF_INET and opt[4:8] == socket.inet_aton("192.0.2.7")
    assert struct.unpack("=H", opt[130:132])[0] == 6 and opt[136:142] == b"secret"
    opt6 = md5sig_option("2001:db8::1", "k")
    assert struct.unpack("=H", opt6[0:2])[0] == socket.AF_INET6
    assert opt6[8:24] == socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    with pytest.raises(ValueError):
        md5sig_option("192.0.2.7", "x" * 81)


def test_kernel_accepts_md5_option() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.IPPROTO_TCP, TCP_MD5SIG, md5sig_option("127.0.0.1", "secret"))
    finally:
        s.close()


@pytest.mark.parametrize(
    ("local_as", "peer_as", "multihop", "ttl"),
    [(64512, 64513, False, 1), (64512, 64513, True, 255), (64512, 64512, False, None)],
    ids=["ebgp-single-hop", "ebgp-multihop", "ibgp-default"],
)
def test_ttl_per_session_kind(local_as: int, peer_as: int, multihop: bool, ttl: int | None) -> None:
    t = PeerTransport(PeerSpec("p", "192.0.2.1", ebgp_multihop=multihop), SessionConfig(local_as, peer_as, "10.0.0.1"))
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        default = s.getsockopt(socket.IPPROTO_IP, socket.IP_TTL)
        t._prepare(s, socket.AF_INET)
        assert s.getsockopt(socket.IPPROTO_IP, socket.IP_TTL) == (default if ttl is None else ttl)
        assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        s.close()
