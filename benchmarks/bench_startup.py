"""Speaker start-up at scale: launch -> every /32 in the router's RIB, and SYN -> every /32 in the RIB.

A 100,000-Service BGP cluster [5,000 with ``--quick``] as a Kubernetes watch log (``data.watch_log_lines``: one
pool, one BGPAdvertisement, one BGPPeer, the Node ``lbnode``, each Service with one EndpointSlice serving on
``lbnode``) is appended to a throwaway redis-server. BIRD 2 (AS 64500) listens on loopback; the BGPPeer points at
it from 127.0.0.2. Measured, all in the same run:

* ``streamlb speak --node lbnode --no-l2`` launched as a process with **no snapshot** (it folds the whole stream)
  and again **from a snapshot** written by ``streamlb run``'s daemon code (``Daemon.save_snapshot`` after a catch-up):
  launch -> BIRD holds every /32, SYN -> BIRD holds every /32, and SYN -> BIRD's Established time.
* the baseline: gobgpd 3 as the speaker for the same prefixes (ORIGIN, AS_PATH, NEXT_HOP alike), launched, fed with
  ``gobgp mrt inject`` and then given the neighbour: the same three figures.

SYN times come from ``tcpdump -p`` on loopback (first SYN from the speaker's source address to BIRD's port),
Established from BIRD (ms resolution), RIB completion from ``birdc show route count`` polled every 5 ms.
Between runs the speaker is stopped with SIGTERM (NOTIFICATION Cease) and BIRD's table drains (a run fails if it
still holds routes 10 s later).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAME = "startup"
ROOT = Path(__file__).resolve().parents[1]


class _Syns:
    """First SYN per source address towards ``port`` on loopback (passive capture, no promiscuous mode)."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.path = workdir / f"syn-{port}.txt"
        self.err = workdir / f"syn-{port}.err"
        self.proc = subprocess.Popen(
            ["tcpdump", "-p", "-n", "-tt", "-l", "--immediate-mode", "-i", "lo",
             f"tcp dst port {port} and tcp[tcpflags] & tcp-syn != 0 and tcp[tcpflags] & tcp-ack == 0"],
            stdout=open(self.path, "wb"), stderr=open(self.err, "wb"))
        deadline = time.monotonic() + 10
        while b"listening on" not in self.err.read_bytes():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"tcpdump did not start: {self.err.read_text()}")
            time.sleep(0.02)

    def first(self, src: str, after: float, wait: float = 3.0) -> float | None:
        deadline = time.monotonic() + wait
        while True:
            for line in self.path.read_text().splitlines():
                m = re.match(r"(\d+\.\d+) IP (\S+)\.\d+ > ", line)
                if m and m.group(2) == src and float(m.group(1)) >= after:
                    return float(m.group(1))
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _speaker_run(url: str, cluster: str, bird, syns: _Syns, n: int, tmp: Path, tag: str) -> dict:
    status = tmp / f"status-{tag}.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.time()
    with open(tmp / f"speaker-{tag}.log", "wb") as logf:
        p = subprocess.Popen([sys.executable, "-m", "reconciler", "speak", "--node", "lbnode", "--redis-url", url,
                              "--cluster", cluster, "--no-l2", "--status-file", str(status),
                              "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=logf, env=env, cwd=ROOT)
    try:
        done = bird.wait_routes(n, 900)
        syn = syns.first("127.0.0.2", t0)
        est = bird.established_at("slb")
        cpu = _cpu_seconds(p.pid)
    finally:
        t_term = time.monotonic()
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
    # the next run must start from an empty RIB: the speaker's SIGTERM ends the session with a NOTIFICATION, so BIRD
    # deletes the routes at once (a close without one would leave them stale for the 120 s restart time)
    deadline = time.monotonic() + 10
    while bird.route_count() > 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"BIRD still holds {bird.route_count()} routes 10 s after the speaker's SIGTERM")
        time.sleep(0.05)
    drained = time.monotonic() - t_term
    return {"launch": done - t0, "syn": (done - syn) if syn else None,
            "est": (est - syn) if (est and syn) else None, "cpu": cpu, "status": status, "drained": drained}


def _prefixes(status: Path) -> list[str]:
    import json

    plan = json.loads(status.read_text())["plan"]
    return [e["prefix"] for e in plan["bgp"]]


def run(quick: bool) -> list[dict]:
    from benchmarks import data
    from benchmarks.peers import Bird, Gobgpd, Redis, free_low_port, have
    from events import inputs, log as logmod, stream
    from reconciler import decisions, snapshot as snapmod
    from reconciler.runtime.daemons import replica as daemonmod

    if have("bird", "birdc", "gobgpd", "gobgp", "tcpdump", "redis-server") or os.geteuid() != 0:
        return [{"name": "speaker start-up", "unit": "-", "streamlb": None, "baselines": {},
                 "higher_is_better": False, "notes": "skipped: needs root, bird, gobgpd, tcpdump, redis-server"}]
    n = 5_000 if quick else 100_000
    tmp = Path(tempfile.mkdtemp(prefix="slb-bench-startup-"))
    srv = Redis()
    bird = Bird(64500, {"slb": ("127.0.0.2", 64512), "gob": ("127.0.0.3", 64513)}, port=free_low_port())
    syns = _Syns(bird.port, tmp)
    try:
        cluster = "startup"
        log_path = tmp / "watch.jsonl"
        log_path.write_bytes(b"\n".join(data.watch_log_lines(
            n, node="lbnode", peer_address="127.0.0.1", peer_port=bird.port, source_address="127.0.0.2",
            peer_asn=64500, my_asn=64512)) + b"\n")
        lg = stream.StreamLog.from_url(srv.url, cluster)
        lg.append([o.event for rec in inputs.read_file(log_path) for o in rec.outcomes
                   if isinstance(o, inputs.Accepted)])
        cold = _speaker_run(srv.url, cluster, bird, syns, n, tmp, "cold")
        prefixes = _prefixes(cold["status"])
        # a snapshot as `streamlb run` writes it (its daemon, caught up, saving)
        import logging

        logging.getLogger("streamlb").setLevel(logging.ERROR)
        d = daemonmod.Daemon(lg, daemonmod.Settings(replica="bench", publish=False, monitor_interval=1e9,
                                                    speaker_ttl=1e9, snapshot_every=10**12))
        d.boot()
        head = lg.head()
        while d.pos < head:
            d.step(timeout_ms=10)
        d.save_snapshot()
        del d
        warm = _speaker_run(srv.url, cluster, bird, syns, n, tmp, "snap")
        # gobgpd as the speaker: launched, fed the same prefixes (MRT inject), then given BIRD as its neighbour
        t0 = time.time()
        with Gobgpd(64513, "127.0.0.3") as gob:
            gob.load(prefixes, "127.0.0.3", timeout=900)
            gob.connect("127.0.0.1", bird.port, 64500, "127.0.0.3")
            done = bird.wait_routes(n, 900)
            syn = syns.first("127.0.0.3", t0)
            est = bird.established_at("gob")
            gcpu = _cpu_seconds(gob.proc.pid) if gob.proc is not None else None
        g = {"launch": done - t0, "syn": (done - syn) if syn else None, "est": (est - syn) if (est and syn) else None}
        assert len(prefixes) == n, f"the speaker planned {len(prefixes)} of {n} prefixes"
    finally:
        syns.close()
        bird.close()
        srv.close()
        shutil.rmtree(tmp, ignore_errors=True)
    gob_label = "gobgpd 3 (launch, MRT inject, neighbour)"
    note = (f"{n:,} Services ({2 * n + 6:,} watch events) in Redis; BIRD 2 on loopback; streamlb speaker CPU "
            f"{cold['cpu'] or 0:.1f} s (no snapshot) / {warm['cpu'] or 0:.1f} s (snapshot) vs gobgpd {gcpu or 0:.1f} s")
    note += (f"; after the speaker's exit BIRD's RIB was empty {cold['drained']:.2f} s / {warm['drained']:.2f} s after "
             "its SIGTERM was sent")
    return [
        {"name": f"speaker launch -> {n:,} /32s in BIRD's RIB, no snapshot", "unit": "s", "streamlb": cold["launch"],
         "baselines": {gob_label: g["launch"]}, "higher_is_better": False, "notes": note + "; goal <= 8 s"},
        {"name": f"speaker launch -> {n:,} /32s in BIRD's RIB, from a snapshot", "unit": "s",
         "streamlb": warm["launch"], "baselines": {gob_label: g["launch"]}, "higher_is_better": False,
         "notes": "snapshot written by streamlb run's daemon; goal <= 3 s"},
        {"name": f"SYN -> {n:,} /32s in BIRD's RIB (no snapshot)", "unit": "s", "streamlb": cold["syn"],
         "baselines": {"gobgpd 3": g["syn"]}, "higher_is_better": False,
         "notes": "goal <= 0.25x gobgpd; tcpdump SYN time, BIRD route count polled every 5 ms"},
        {"name": f"SYN -> {n:,} /32s in BIRD's RIB (from a snapshot)", "unit": "s", "streamlb": warm["syn"],
         "baselines": {"gobgpd 3": g["syn"]}, "higher_is_better": False, "notes": ""},
        {"name": "SYN -> Established as BIRD reports it", "unit": "s", "streamlb": cold["est"],
         "baselines": {"gobgpd 3": g["est"]}, "higher_is_better": False,
         "notes": f"no-snapshot run; snapshot run {warm['est'] if warm['est'] is not None else float('nan'):.3f} s; "
                  "goal < 0.05 s; BIRD's clock has ms resolution"},
    ]
