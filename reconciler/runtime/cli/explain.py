"""``streamlb explain SERVICE --log FILE...``: why a Service has these IPs, or none (offline, like replay)."""


import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import msgspec
import typer
from rich.console import Console
from rich.table import Table

VERDICT_STYLE = {"selected": "green", "available": "cyan", "notTried": "dim"}


def render(out: dict[str, Any], console: Console) -> None:
    key = out["service"]
    if not out["handled"]:
        console.print(f"{key}: not handled by streamlb: {out['not_handled']}")
        return
    a = out.get("allocation")
    if a is not None:
        if a["ingress"]:
            head = f"{key}: {', '.join(a['ingress'])} from pool {a['pool']}"
        else:
            head = f"{key}: no IP"
        if a["reason"]:
            head += f" — {a['reason']}"
        console.print(head, markup=False)
        if a["message"]:
            console.print(f"  {a['message']}", markup=False)
        fam = ", ".join(a["families"]) or (a["family_error"] or "no cluster IP yet")
        console.print(f"  families: {fam} ({a['ip_family_policy']})   configuration: {a['configuration']}", markup=False)
        req = a["requested"]
        req_text = req["error"] if isinstance(req, dict) else (", ".join(req) or "-")
        console.print(
            f"  requested: {req_text}   address-pool: {a['pool_annotation'] or '-'}   "
            f"sharing key: {a['sharing_key'] or '-'}   ports: {', '.join(a['ports']) or '-'}",
            markup=False,
        )
        if a["pools"]:
            t = Table(title="pools, in the order they are considered", title_justify="left")
            for col in ("#", "pool", "group", "priority", "verdict", "detail"):
                t.add_column(col)
            for i, row in enumerate(a["pools"], 1):
                style = VERDICT_STYLE.get(row["verdict"], "yellow")
                t.add_row(str(i), row["pool"], row["group"], str(row["priority"]),
                          f"[{style}]{row['verdict']}[/]", row["detail"])
            console.print(t)
        if a["events"]:
            console.print("  events (oldest first):")
            for e in a["events"]:
                console.print(f"    {e['type']:<7} {e['reason']}: {e['message']}", markup=False)
    subnets = out.get("l2_subnet") or {}
    for ip, v in subnets.items():
        console.print(f"  L2 subnet: {ip} on {v['node'] or '-'}: {v['verdict']} — {v['why']}", markup=False)
    for name in sorted(k for k in out if k not in ("service", "handled", "not_handled", "allocation", "l2_subnet")):
        console.print(f"  {name}:")
        console.print(f"    {msgspec.json.encode(out[name], order='sorted').decode()}", markup=False)


def load_speaker_statuses(paths: list[Path]) -> dict[str, dict]:
    """Speaker status JSON files (``streamlb speak --status-file`` or a saved status key): each holds one status
    (with ``node``) or an object mapping node -> status. Raises ValueError naming the file."""
    import json

    out: dict[str, dict] = {}
    for p in paths:
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{p}: unreadable speaker status: {exc}") from None
        if isinstance(data, dict) and isinstance(data.get("node"), str):
            out[data["node"]] = data
        elif isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()):
            out.update(data)
        else:
            raise ValueError(f"{p}: not a speaker status (an object with 'node', or node -> status)")
    return out


def register(app: typer.Typer) -> None:
    from reconciler.runtime.cli.app import LbClass, MetallbNs, fail

    @app.command()
    def explain(
        service: Annotated[str, typer.Argument(help="namespace/name (a bare name means namespace 'default').")],
        log: Annotated[Optional[list[Path]], typer.Option(
            "--log", help="Input file (repeatable), as for replay; without it, the live stream of --redis-url.",
        )] = None,
        output: Annotated[str, typer.Option("--output", "-o", help="json or table.")] = "table",
        redis_url: Annotated[Optional[str], typer.Option(
            "--redis-url",
            help="Read the speakers' status keys (interfaces for the L2 subnet check) from this Redis, and the "
                 "events too when no --log is given.")] = None,
        cluster: Annotated[str, typer.Option("--cluster", envvar="STREAMLB_CLUSTER",
                                             help="streamlb cluster name (with --redis-url).")] = "default",
        speaker_status: Annotated[Optional[list[Path]], typer.Option(
            "--speaker-status", help="Speaker status JSON file(s) for the L2 subnet check, offline "
                                     "(repeatable).")] = None,
        at: Annotated[Optional[int], typer.Option("--at", help="Stop after the first N input records.", min=0)] = None,
        metallb_namespace: MetallbNs = None,
        lb_class: LbClass = None,
    ) -> None:
        """Why SERVICE has these IPs or none: pools in order and why each was skipped, reasons and events."""
        from events import inputs
        from reconciler import explain as explainmod
        from reconciler.runtime import replay as replaymod

        if output not in ("json", "table"):
            raise fail(f"--output must be json or table, not {output!r}")
        key = service if "/" in service else f"default/{service}"
        from reconciler.runtime import doctor as doc

        if not log and not redis_url:
            raise fail("give --log FILE (offline) or --redis-url (live)")
        try:
            statuses = load_speaker_statuses(list(speaker_status or ()))
        except ValueError as exc:
            raise fail(str(exc)) from None
        if redis_url:
            from events import log as logmod, stream

            try:
                lg = stream.StreamLog.from_url(redis_url, cluster)
            except ValueError as exc:
                raise fail(str(exc)) from None
            try:
                statuses = {**lg.speaker_statuses(), **statuses}
                state = None if log else doc.fold_live(lg, lb_class)[0]
            except logmod.LogUnavailable as exc:
                raise fail(f"cannot reach Redis at {redis_url}: {exc}", code=2) from None
            finally:
                lg.close()
        if log:
            try:
                result = replaymod.replay(
                    [str(f) for f in log], at=at,
                    metallb_namespaces=tuple(metallb_namespace or ("metallb-system",)), lb_class=lb_class,
                )
            except inputs.InputError as exc:
                raise fail(str(exc)) from None
            state = result.state
        out = explainmod.explain(state, key)
        where = ", ".join(str(f) for f in log) if log else f"the stream of cluster {cluster!r}"
        if out is None:
            raise fail(f"service {key} is not in the log ({where})")
        if "l2" in out:
            out["l2_subnet"] = doc.l2_subnets(state, statuses, [key]).get(key, {})
        if output == "json":
            sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(out, order="sorted"), indent=2) + b"\n")
            sys.stdout.flush()
            return
        render(out, Console(highlight=False, soft_wrap=True))
