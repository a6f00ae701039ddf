"""A speaker's clean exit (SIGTERM) removes its routes from the router, even when the router is slow to read.

Two network namespaces joined by a veth pair: the speaker's node and a BIRD 2 router (passive, ``graceful restart
on``: a helper that keeps a peer's routes as stale when the peer's connection is lost without a NOTIFICATION). TCP
buffers are made small in both namespaces (per-namespace ``tcp_rmem``/``tcp_wmem``) so that a few thousand
withdrawals no longer fit in flight. A real redis-server (Unix socket, crosses namespaces) holds a watch log of
N BGP Services, all announced by ``streamlb speak --node lbnode``.

The router is frozen (SIGSTOP) when the speaker gets its SIGTERM and thawed once the speaker has exited. Checked:
the speaker exits by itself, and the router then drops every route of the speaker, having received Cease
(Administrative Shutdown). A speaker that withdrew prefix by prefix before its NOTIFICATION ran out of its stop
timeout with the withdrawals stuck behind the frozen reader and closed without the NOTIFICATION: BIRD then read a
connection loss, kept the routes as stale for the restart time (120 s) and the check failed.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from benchmarks import data
from events import inputs, stream
from tests.integration.speaker_env import Bird, SpeakProc, Topology, addr, have_root_netns, wait_for
from tests.redis_server import RedisServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not have_root_netns(), reason="needs root and iproute2 for network namespaces"),
]

N = 20_000
SPK, RTR = "10.93.0.1", "10.93.0.2"
SMALL = "4096 8192 16384"  # min/default/max bytes: ~16 KiB each way, far less than N withdrawals (~100 KiB)


def _count(bird: Bird) -> int:
    out = bird.cli("show", "route", "protocol", "slb", "count", check=False).stdout
    m = re.search(r"(\d+) of \d+ routes", out)
    return int(m.group(1)) if m else 0


def test_sigterm_removes_the_routes_even_from_a_router_slow_to_read(tmp_path: Path) -> None:
    topo = Topology()
    redis = RedisServer(tmp_path / "redis", extra=["--unixsocket", str(tmp_path / "redis.sock"),
                                                   "--unixsocketperm", "777"]).start()
    bird = None
    sp = None
    frozen = False
    try:
        spk, rtr = topo.ns("spk"), topo.ns("rtr")
        topo.link(spk, "eth0", rtr, "eth0")
        addr(spk, "eth0", f"{SPK}/24")
        addr(rtr, "eth0", f"{RTR}/24")
        for ns in (spk, rtr):
            ns.run("sysctl", "-q", "-w", f"net.ipv4.tcp_rmem={SMALL}", f"net.ipv4.tcp_wmem={SMALL}")
        url = f"unix://{tmp_path / 'redis.sock'}"
        log_path = tmp_path / "watch.jsonl"
        log_path.write_bytes(b"\n".join(data.watch_log_lines(
            N, node="lbnode", peer_address=RTR, peer_port=179, source_address=SPK, peer_asn=64500,
            my_asn=64512)) + b"\n")
        lg = stream.StreamLog.from_url(url, "exit")
        lg.append([o.event for rec in inputs.read_file(log_path) for o in rec.outcomes
                   if isinstance(o, inputs.Accepted)])
        bird = Bird(rtr, tmp_path, 64500, RTR)
        bird.neighbor("slb", RTR, SPK, 64512)
        bird.start()
        sp = SpeakProc(spk, "lbnode", tmp_path, "--cluster", "exit", "--no-l2", url=url).start()
        wait_for(lambda: _count(bird) == N, 300, interval=0.5, what=f"BIRD holds the speaker's {N} routes")
        assert bird.proc is not None
        os.kill(bird.proc.pid, signal.SIGSTOP)
        frozen = True
        sp.send_signal(signal.SIGTERM)
        rc = sp.proc.wait(60)  # it ends by itself (its stop is bounded) while the router reads nothing
        assert rc == 0, sp.logfile.read_text()[-2000:]
        os.kill(bird.proc.pid, signal.SIGCONT)
        frozen = False
        # a NOTIFICATION ends the session non-gracefully: BIRD deletes the routes at once (stale ones would stay
        # for the 120 s restart time)
        wait_for(lambda: _count(bird) == 0, 30, interval=0.2, what="BIRD dropped every route of the speaker")
        info = bird.cli("show", "protocols", "all", "slb", check=False).stdout
        assert "Administrative shutdown" in info, info
    finally:
        if bird is not None and bird.proc is not None and frozen:
            os.kill(bird.proc.pid, signal.SIGCONT)
        if sp is not None:
            sp.stop()
        if bird is not None:
            bird.stop()
        topo.close()
        redis.stop()
