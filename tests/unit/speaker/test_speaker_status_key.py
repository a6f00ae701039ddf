"""The speaker's status key (streamlb:{c}:status:{node}): what it holds (interfaces with their addresses, conflicts,
session since-times) and when it is written (at once on a change that matters, else every publish interval)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from fastpath.emit.l2 import Interface
from reconciler.runtime.daemons.speaker import Speaker, SpeakerSettings
from reconciler.runtime.local import LocalCluster
from tests.unit.speaker.test_speaker_runtime import CONFIG, RecordingL2, events_of, run_until, svc


class StatusLog(LocalCluster):
    """The in-process cluster log, also keeping every status key write (payload, ttl) in order."""

    def __init__(self) -> None:
        super().__init__()
        self.status_writes: list[tuple[str, dict, int]] = []

    def publish_status(self, node: str, payload: bytes, ttl_ms: int) -> None:
        self.status_writes.append((node, json.loads(payload), ttl_ms))


class Prober:
    def __init__(self) -> None:
        self.found: list[dict] = []
        self.last_error = None

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def conflicts(self) -> list[dict]:
        return list(self.found)


def test_status_key_content_and_cadence(tmp_path: Path) -> None:
    log = StatusLog()
    log.append(events_of(tmp_path, CONFIG + "---" + svc("web")))
    l2 = RecordingL2()
    l2.responder.ifaces = {"eth0": Interface("eth0", 2, bytes.fromhex("02005e000001"), None)}
    reads: list[list[str]] = []

    def addresses(names: list[str]) -> dict[str, list[str]]:
        reads.append(names)
        return {"eth0": ["10.0.0.1/24"], "eth9": ["192.0.2.1/24"]}

    prober = Prober()
    settings = SpeakerSettings(node="node-a", block_ms=20, bgp=False, status_interval=0.02, status_ttl_ms=45_000,
                               status_publish_interval=0.5, address_interval=0.1)
    sp = Speaker(log, settings, l2=l2, prober=prober, addresses=addresses)

    async def main() -> None:
        def published_with(pred):
            return lambda: any(pred(w[1]) for w in log.status_writes)

        stop, task = await run_until(sp, published_with(lambda s: s["interfaces_known"] and s["plan"]["l2"]))
        node, st, ttl = log.status_writes[-1]
        assert (node, ttl) == ("node-a", 45_000)
        assert st["interfaces"] == [{"name": "eth0", "mac": "02:00:5e:00:00:01", "addresses": ["10.0.0.1/24"]}]
        assert reads and reads[0] == ["eth0"]  # only the interfaces the speaker may announce on are read
        assert st["conflicts"] == [] and st["conflict_probe"] is True and st["written_at"].endswith("Z")
        # nothing that matters changes: no new key before the publish interval, then a refresh
        n = len(log.status_writes)
        await asyncio.sleep(0.2)
        assert len(log.status_writes) == n
        await asyncio.sleep(0.5)
        assert len(log.status_writes) > n
        # a conflict appears: published at once (well before the interval)
        prober.found.append({"ip": "10.0.0.10", "mac": "02:00:00:00:00:99", "interface": "eth0",
                             "first_seen": "2026-01-01T00:00:00Z", "last_seen": "2026-01-01T00:00:00Z"})
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        while not log.status_writes[-1][1]["conflicts"]:
            assert loop.time() - t0 < 0.4, "conflict not published at once"
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(main())


def test_without_address_reader_interfaces_are_not_known(tmp_path: Path) -> None:
    log = StatusLog()
    log.append(events_of(tmp_path, CONFIG + "---" + svc("web")))
    l2 = RecordingL2()
    sp = Speaker(log, SpeakerSettings(node="node-a", block_ms=20, bgp=False, status_interval=0.02), l2=l2)

    async def main() -> None:
        stop, task = await run_until(sp, lambda: log.status_writes)
        st = log.status_writes[-1][1]
        assert st["interfaces_known"] is False and st["conflict_probe"] is False
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(main())


def test_sessions_carry_since_their_state_began() -> None:
    t = [1000.0]
    sp = Speaker(StatusLog(), SpeakerSettings(node="node-a", bgp=False), wall=lambda: t[0])

    def status(bgp: str, bfd: str) -> dict:
        out = {"peers": {"router": {"state": bgp}}, "bfd": {"router": {"state": bfd}}}
        sp._diagnostics(out)
        return out

    s = status("Active", "Down")
    assert s["peers"]["router"]["since"] == s["bfd"]["router"]["since"] == "1970-01-01T00:16:40Z"
    t[0] = 1030.0
    s = status("Established", "Down")  # BGP changed state, BFD did not
    assert s["peers"]["router"]["since"] == "1970-01-01T00:17:10Z"
    assert s["bfd"]["router"]["since"] == "1970-01-01T00:16:40Z"
