"""Kubernetes commands: ``streamlb import metallb`` and ``streamlb watch``.

Thin: parsing, output and exit codes here; the work is in :mod:`reconciler.runtime.migrate` and
:mod:`reconciler.runtime.kube_watch`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

err = Console(stderr=True, highlight=False, soft_wrap=True)

import_app = typer.Typer(
    help="Import configuration and state from another load balancer.", no_args_is_help=True,
    add_completion=False,
)

MetallbNs = Annotated[
    Optional[list[str]],
    typer.Option("--metallb-namespace", help="Namespace whose MetalLB objects count (repeatable).",
                 envvar="STREAMLB_METALLB_NAMESPACE"),
]
LbClass = Annotated[
    Optional[str],
    typer.Option("--lb-class", help="Handle only Services of this loadBalancerClass (default: no class).",
                 envvar="STREAMLB_LB_CLASS"),
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"streamlb: error: {message}", markup=False)
    return typer.Exit(code)


def _write_events(path: Path, events: list) -> None:
    from events import codec, logfile

    if path.suffix in (".jsonl", ".json", ".ndjson"):
        blob = b"".join(codec.encode_json(e) + b"\n" for e in events)
    else:
        blob = logfile.encode_file(events)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(blob)
    tmp.replace(path)


@import_app.command("metallb")
def import_metallb(
    files: Annotated[list[str], typer.Argument(help="MetalLB dump(s): YAML or JSON as kubectl prints them; - for stdin.")],
    out: Annotated[Optional[Path], typer.Option("--out", help="Write the events here (.evlog, or .jsonl for "
                                                "native JSON lines). Without it: report only.")] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="Report format: json or table.")] = "table",
    allow_changes: Annotated[bool, typer.Option("--allow-changes", help="Exit 0 even if some current "
                                                "assignment would not be kept.")] = False,
    metallb_namespace: MetallbNs = None,
    lb_class: LbClass = None,
) -> None:
    """Turn a MetalLB config dump plus Service statuses into an event log that keeps every current assignment.

    Exit 0 when every address MetalLB assigned is kept; 1 when some would change (the log is still written,
    use --allow-changes to accept); 2 for unreadable input.
    """
    from reconciler.runtime import migrate

    if output not in ("json", "table"):
        raise _fail(f"--output must be json or table, not {output!r}")
    sources: list[tuple[str, str]] = []
    for f in files:
        try:
            if f == "-":
                sources.append(("<stdin>", sys.stdin.read()))
            else:
                sources.append((f, Path(f).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail(f"{f}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        result = migrate.import_metallb(
            sources, metallb_namespaces=tuple(metallb_namespace or ("metallb-system",)), lb_class=lb_class
        )
    except migrate.ImportError_ as exc:
        raise _fail(str(exc)) from None
    if out is not None:
        try:
            _write_events(out, result.events)
        except OSError as exc:
            raise _fail(f"{out}: cannot write: {exc.strerror or exc}", 1) from None
    obj = result.to_json_obj()
    if output == "json":
        import msgspec

        sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(obj, order="sorted"), indent=2) + b"\n")
        sys.stdout.flush()
    else:
        con = Console(highlight=False, soft_wrap=True)
        con.print(f"events: {obj['events']}   Services with an address: {obj['services_with_ip']}   kept: "
                  f"{obj['assignments_kept']}   would change: {obj['assignments_changed']}", markup=False)
        if result.findings:
            t = Table(title="What streamlb does differently")
            for col in ("severity", "subject", "finding"):
                t.add_column(col, overflow="fold")
            for f in result.findings:
                t.add_row(f.severity, f.subject, f.message)
            con.print(t)
        if obj["ignored"]:
            con.print("ignored: " + ", ".join(f"{k} ×{n}" for k, n in obj["ignored"].items()), markup=False)
        for r in obj["rejected"]:
            con.print(f"rejected {r['where']}: {r['reason']}", markup=False)
        if out is not None:
            con.print(f"wrote {len(result.events)} events to {out}", markup=False)
    if result.assignments_changed and not allow_changes:
        err.print(f"streamlb: {result.assignments_changed} current assignment(s) would change "
                  "(see the errors above; --allow-changes to accept)", markup=False)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
