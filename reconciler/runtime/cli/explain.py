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
    for name in sorted(k for k in out if k not in ("service", "handled", "not_handled", "allocation")):
        console.print(f"  {name}:")
        console.print(f"    {msgspec.json.encode(out[name], order='sorted').decode()}", markup=False)


def register(app: typer.Typer) -> None:
    from reconciler.runtime.cli.app import LbClass, MetallbNs, fail

    @app.command()
    def explain(
        service: Annotated[str, typer.Argument(help="namespace/name (a bare name means namespace 'default').")],
        log: Annotated[list[Path], typer.Option("--log", help="Input file (repeatable), as for replay.")],
        output: Annotated[str, typer.Option("--output", "-o", help="json or table.")] = "table",
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
        try:
            result = replaymod.replay(
                [str(f) for f in log], at=at,
                metallb_namespaces=tuple(metallb_namespace or ("metallb-system",)), lb_class=lb_class,
            )
        except inputs.InputError as exc:
            raise fail(str(exc)) from None
        out = explainmod.explain(result.state, key)
        if out is None:
            raise fail(f"service {key} is not in the log ({', '.join(str(f) for f in log)})")
        if output == "json":
            sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(out, order="sorted"), indent=2) + b"\n")
            sys.stdout.flush()
            return
        render(out, Console(highlight=False, soft_wrap=True))
