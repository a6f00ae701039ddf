"""Speaker start-up on a large stream: it connects only with its table ready, and answers the router's OPEN at once.

A real redis-server holds a watch log of 3,000 BGP Services (6,006 events, no snapshot); a real BIRD 2 listens on
loopback (passive). ``streamlb speak`` is launched and folds the whole stream. Observers: tcpdump on loopback
(passive, only BIRD's port) dissected by tshark (decode-as BGP), the speaker's JSON log, BIRD's route count.

Checked: the speaker's first SYN comes after its "plan ready" line (it does not connect while folding), BIRD's OPEN
is answered by the speaker's KEEPALIVE within 100 ms (issue 17: the bound is the issue's; the wait it replaces was
0.47-4.8 s), and BIRD ends up with every prefix.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from benchmarks import data
from benchmarks.peers import Bird, free_low_port, have
from events import inputs, stream
from tests.integration.speaker_env import SpeakProc
from tests.redis_server import redis_server  # noqa: F401 (fixture)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0 or bool(have("bird", "birdc", "tcpdump", "tshark")),
                       reason="needs root, bird, tcpdump and tshark"),
]

N = 3_000


def test_speaker_connects_with_its_table_ready_and_answers_the_open_at_once(redis_server, tmp_path: Path) -> None:
    bird = Bird(64500, {"slb": ("127.0.0.2", 64512)}, port=free_low_port())
    procs: list[subprocess.Popen] = []
    try:
        log_path = tmp_path / "watch.jsonl"
        log_path.write_bytes(b"\n".join(data.watch_log_lines(
            N, node="lbnode", peer_address="127.0.0.1", peer_port=bird.port, source_address="127.0.0.2",
            peer_asn=64500, my_asn=64512)) + b"\n")
        lg = stream.StreamLog.from_url(redis_server.url, "startup")
        lg.append([o.event for rec in inputs.read_file(log_path) for o in rec.outcomes
                   if isinstance(o, inputs.Accepted)])
        pcap = tmp_path / "bgp.pcap"
        cap = subprocess.Popen(["tcpdump", "-p", "-n", "-U", "--immediate-mode", "-i", "lo", "-w", str(pcap),
                                f"tcp port {bird.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(cap)
        deadline = time.monotonic() + 10
        while not pcap.exists() or pcap.stat().st_size == 0:  # the pcap header is written once it listens
            assert time.monotonic() < deadline and cap.poll() is None, "tcpdump did not start"
            time.sleep(0.02)
        sp = SpeakProc(None, "lbnode", tmp_path, "--cluster", "startup", "--no-l2", url=redis_server.url).start()
        speaker_log = sp.logfile
        procs.append(sp.proc)
        bird.wait_routes(N, 600)
        time.sleep(0.3)  # the capture is packet-buffered; let the last segments land
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
        bird.close()
    lines = [json.loads(x) for x in speaker_log.read_text().splitlines() if x.startswith("{")]
    ready = [x for x in lines if x.get("msg") == "plan ready"]
    assert len(ready) == 1 and ready[0]["prefixes"] == N, ready
    out = subprocess.run(["tshark", "-r", str(pcap), "-d", f"tcp.port=={bird.port},bgp", "-T", "fields",
                          "-E", "separator=,", "-e", "frame.time_epoch", "-e", "tcp.srcport", "-e", "tcp.dstport",
                          "-e", "tcp.flags.syn", "-e", "tcp.flags.ack", "-e", "bgp.type"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    rows = [r.split(",") for r in out.splitlines()]
    syn = min(float(r[0]) for r in rows if r[2] == str(bird.port) and r[3] in ("1", "True") and r[4] in ("0", "False"))
    opens = [float(r[0]) for r in rows if r[1] == str(bird.port) and "1" in r[5].split(";")]
    keepalives = [float(r[0]) for r in rows if r[2] == str(bird.port) and "4" in r[5].split(";")]
    assert opens and keepalives, out[:2000]
    # it did not connect while folding: the SYN follows the plan (log timestamps are rounded to the ms)
    assert syn >= ready[0]["ts"] - 0.001
    # the router's OPEN is answered at once, before any UPDATE is needed
    answered = min(k for k in keepalives if k >= opens[0])
    assert answered - opens[0] < 0.100, f"OPEN answered after {answered - opens[0]:.3f} s"
