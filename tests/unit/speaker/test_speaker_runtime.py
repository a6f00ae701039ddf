"""The speaker's shell logic without a network: an in-process cluster log, a recording L2 side, BGP off.

Checks the contract of reconciler/runtime/daemons/speaker.py: a heartbeat key (and no stream entry of its own) once
serving, effects executed in plan order (withdrawals first), a log outage keeps the wire and is reported, bad entries
are skipped, SIGTERM-style shutdown withdraws and deletes the key, keep-on-exit leaves it for the restart grace, and a
restarted speaker re-announces.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from events import inputs, log as logmod, schema
from reconciler.runtime.local import LocalCluster
from reconciler.runtime.daemons.speaker import Speaker, SpeakerSettings, router_id_for

CONFIG = """
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: p, namespace: metallb-system}
spec: {addresses: [10.0.0.10-10.0.0.19]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: metallb-system}
spec: {}
---
apiVersion: v1
kind: Node
metadata: {name: node-a, labels: {kubernetes.io/hostname: node-a}}
"""


def svc(name: str) -> str:
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.{len(name)}
  clusterIPs: [10.96.0.{len(name)}]
  ipFamilies: [IPv4]
  ports: [{{port: 80, protocol: TCP}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-x, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
endpoints:
  - addresses: [10.244.0.9]
    conditions: {{ready: true}}
    nodeName: node-a
"""


def events_of(tmp: Path, text: str) -> list[schema.Event]:
    p = tmp / "x.yaml"
    p.write_text(text)
    return [o.event for rec in inputs.read_file(p) for o in rec.outcomes if isinstance(o, inputs.Accepted)]


class RecordingL2:
    """Stands in for L2Speaker: records calls in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.owned: set[str] = set()
        self.stopped = False

        class _R:
            owned: dict = {}
            ifaces: dict = {}

            class counters:  # noqa: N801
                requests_received = responses_sent = gratuitous_sent = 0
                dropped: dict = {}

        self.responder = _R()

    def start(self) -> None:
        pass

    def announce(self, ip: str, interfaces: tuple[str, ...] = ()) -> None:
        self.calls.append(("announce", ip))
        self.owned.add(ip)

    def withdraw(self, ip: str) -> None:
        self.calls.append(("withdraw", ip))
        self.owned.discard(ip)

    async def stop(self) -> None:
        self.stopped = True


async def run_until(sp: Speaker, cond, timeout: float = 10.0) -> asyncio.Event:
    stop = asyncio.Event()
    task = asyncio.create_task(sp.run(stop))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "condition not reached"
        assert not task.done(), task.exception() if task.done() else None
        await asyncio.sleep(0.01)
    return stop, task


def test_speaker_follows_plan_and_reports_outage(tmp_path: Path) -> None:
    log = LocalCluster()
    log.append(events_of(tmp_path, CONFIG + "---" + svc("web")))
    l2 = RecordingL2()
    sp = Speaker(log, SpeakerSettings(node="node-a", block_ms=20, bgp=False, status_file=str(tmp_path / "s.json"),
                                      status_interval=0.05), l2=l2)

    async def main() -> None:
        stop, task = await run_until(sp, lambda: l2.owned)
        assert l2.calls == [("announce", "10.0.0.10")]
        # the speaker keeps its heartbeat key and appends nothing itself (design.md §2)
        await run_wait(lambda: "node-a" in log.alive_speakers())
        kinds = [type(logmod.decode_record(r)).__name__ for r in log.read()]
        assert "SpeakerUp" not in kinds
        # a second Service: announced without touching the first
        log.append(events_of(tmp_path, svc("api")))
        await run_wait(lambda: len(l2.owned) == 2)
        # log outage: the wire keeps its state, the status says so
        log.available = False
        await run_wait(lambda: sp.redis_up is False)
        assert l2.owned == {"10.0.0.10", "10.0.0.11"} and not l2.stopped
        await run_wait(lambda: '"log_up": false' in (tmp_path / "s.json").read_text())
        log.available = True
        # a bad entry is skipped, the next good one applied
        log.append_raw([b"\x00garbage"])
        log.append(events_of(tmp_path, svc("dns")))
        await run_wait(lambda: len(l2.owned) == 3)
        assert sp.skipped == 1 and sp.redis_up
        # deleting a Service withdraws its IP first
        log.append([schema.K8sDelete(ref=schema.ObjectRef(kind="Service", namespace="default", name="web"))])
        await run_wait(lambda: "10.0.0.10" not in l2.owned)
        stop.set()
        await asyncio.wait_for(task, 10)

    async def run_wait(cond, timeout: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not cond():
            assert loop.time() < deadline, "condition not reached"
            await asyncio.sleep(0.01)

    asyncio.run(main())
    assert l2.stopped
    kinds = [type(logmod.decode_record(r)).__name__ for r in log.read() if r.data != b"\x00garbage"]
    assert "SpeakerDown" not in kinds and "SpeakerUp" not in kinds
    assert "node-a" not in log.alive_speakers()  # deleted: the replicas append speaker.down at once


def test_keep_on_exit_leaves_the_key_for_the_restart_grace_and_restart_reannounces(tmp_path: Path) -> None:
    clock = [1000.0]
    log = LocalCluster(lambda: clock[0])
    log.append(events_of(tmp_path, CONFIG + "---" + svc("web")))
    n = len(list(log.read()))

    async def one_life(keep: bool) -> RecordingL2:
        l2 = RecordingL2()
        sp = Speaker(log, SpeakerSettings(node="node-a", block_ms=20, bgp=False, keep_on_exit=keep,
                                          restart_grace_ms=15_000), l2=l2)
        stop, task = await run_until(sp, lambda: l2.owned and sp.heartbeat.beats >= 1)
        stop.set()
        await asyncio.wait_for(task, 10)
        return l2

    first = asyncio.run(one_life(True))
    assert first.calls == [("announce", "10.0.0.10")]
    clock[0] += 14  # a planned restart within the grace is not a node death
    assert log.alive_speakers() == {"node-a"}
    second = asyncio.run(one_life(False))  # restart: everything announced again from the current decisions
    assert second.calls == [("announce", "10.0.0.10")]
    assert log.alive_speakers() == set()  # a clean exit without keep: key gone at once
    assert len(list(log.read())) == n  # neither life appended anything


def test_router_id_fallback_is_crc32_of_node_name_little_endian() -> None:
    import zlib

    c = zlib.crc32(b"node-a")
    assert router_id_for("node-a") == ".".join(str(b) for b in c.to_bytes(4, "little"))
