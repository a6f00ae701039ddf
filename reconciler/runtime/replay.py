"""Offline replay: input files -> fold -> the replay result of design.md §5 (no Redis, no network)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgspec

from events import inputs
from reconciler import decisions, fold, state as statemod


@dataclass(slots=True)
class ReplayResult:
    state: statemod.State
    events_applied: int = 0
    records: int = 0
    ignored: Counter = field(default_factory=Counter)
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "events_applied": self.events_applied,
            "ignored": dict(sorted(self.ignored.items())),
            "state_hash": decisions.state_hash(self.state),
            "config": decisions.config(self.state),
            "services": decisions.services(self.state),
            "bgp": decisions.bgp(self.state),
            "rejected": self.rejected,
        }

    def to_json(self) -> bytes:
        return msgspec.json.format(msgspec.json.encode(self.to_json_obj(), order="sorted"), indent=2) + b"\n"


def replay(
    files: list[str],
    at: int | None = None,
    metallb_namespaces: tuple[str, ...] = ("metallb-system",),
    lb_class: str | None = None,
) -> ReplayResult:
    """Fold ``files`` in order. Raises :class:`events.inputs.InputError` for an unreadable/undetectable file."""
    opts = inputs.Options(metallb_namespaces=metallb_namespaces)
    result = ReplayResult(state=statemod.new(lb_class))
    for rec in inputs.read_files(files, opts):
        if at is not None and result.records >= at:
            break
        result.records += 1
        for outcome in rec.outcomes:
            match outcome:
                case inputs.Accepted(event=event):
                    fold.apply(result.state, event)
                    result.events_applied += 1
                case inputs.Ignored(key=key):
                    result.ignored[key] += 1
                case inputs.Rejected(reason=reason):
                    result.rejected.append({"file": rec.file, "record": rec.number, "reason": reason})
                case inputs.Skipped():
                    pass
    return result
