"""Speaker liveness (design.md §2): heartbeat keys with a TTL, and the leader's monitor.

* A speaker appends ``speaker.up`` when it starts, ``speaker.down`` when it exits cleanly, and refreshes
  ``streamlb:{c}:speaker:{node}`` with ``SET ... PX ttl`` every ttl/3 (:class:`Heartbeat`).
* The leader of ``streamlb run`` compares the live heartbeat keys with what the fold believes and appends only
  *changes* (:class:`Monitor`): ``speaker.down`` for a node it knew alive whose key expired, ``speaker.up`` for a
  node the fold has down whose key is back. Heartbeats themselves never enter the log.

A node is "known" to the monitor once its heartbeat was seen or a ``speaker.up`` for it was folded, so a new leader
that takes over after a speaker died still reports it (the fold saw its ``speaker.up``). Nodes known only from the
log are judged once the leader has watched the heartbeats for a full TTL (``judge_unseen``), so a fresh leader does
not declare down a speaker whose next heartbeat is merely not due yet.
"""

from __future__ import annotations

import threading

from events import schema


class Monitor:
    def __init__(self) -> None:
        self.seen: set[str] = set()  # heartbeats this monitor saw
        self.logged: set[str] = set()  # nodes with a folded speaker.up

    def observe(self, event: schema.Event) -> None:
        if isinstance(event, schema.SpeakerUp):
            self.logged.add(event.node)

    def changes(self, alive: set[str], state, judge_unseen: bool = True) -> list[schema.Event]:
        """The events to append, in node-name order, given the live heartbeats and the folded state."""
        down = state.speakers_down
        self.seen |= alive
        candidates = self.seen | (self.logged if judge_unseen else set())
        out: list[schema.Event] = []
        for node in sorted(alive | candidates):
            if node in alive:
                if node in down:
                    out.append(schema.SpeakerUp(node=node))
            elif node not in down:
                out.append(schema.SpeakerDown(node=node))
        return out


class Heartbeat:
    """Keeps a speaker's heartbeat key alive from a background thread (``start``/``stop``).

    ``log`` is a :class:`events.stream.StreamLog` (or anything with ``heartbeat``/``clear_heartbeat``/``append``).
    """

    def __init__(self, log, node: str, ttl_ms: int = 15_000) -> None:
        self.log = log
        self.node = node
        self.ttl_ms = ttl_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0

    def beat(self) -> None:
        self.log.heartbeat(self.node, self.ttl_ms)

    def _loop(self) -> None:
        from events.log import LogUnavailable

        while not self._stop.wait(self.ttl_ms / 3000):
            try:
                self.beat()
            except LogUnavailable:
                self.failures += 1

    def start(self, announce: bool = True) -> None:
        self.beat()
        if announce:
            self.log.append([schema.SpeakerUp(node=self.node)])
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{self.node}", daemon=True)
        self._thread.start()

    def stop(self, announce: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if announce:
            self.log.append([schema.SpeakerDown(node=self.node)])
        self.log.clear_heartbeat(self.node)
