"""The ``streamlb`` command line (typer + rich). Thin: every command calls core or runtime functions.

Exit codes: 0 success; 1 operational failure; 2 bad input (unreadable file, undetectable format, bad option).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    name="streamlb",
    help="streamlb: a deterministic, event-sourced load balancer for bare-metal Kubernetes (reads MetalLB's CRDs).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)

# Command groups live in their own modules (reconciler/runtime/cli/*.py); each exposes ``register(app)`` or a
# typer sub-app ``app`` mounted under its name. A missing module is skipped; an error inside one is not hidden.
_COMMAND_MODULES = {
    "frames": "frames",
    "explain": None,
    "plan": None,
    "events": "events",
    "run": None,
    "speak": None,
    "kube": None,
    "routercfg": None,
    "doctor": None,
    "acl": "redis-acl",
}


def _register_commands() -> None:
    only = _invoked_group()
    for mod_name, group in _COMMAND_MODULES.items():
        if only is not None and mod_name != only:
            continue
        full = f"reconciler.runtime.cli.{mod_name}"
        try:
            mod = importlib.import_module(full)
        except ModuleNotFoundError as exc:
            if exc.name == full:
                continue
            raise
        if hasattr(mod, "register"):
            mod.register(app)
        else:
            app.add_typer(mod.app, name=group)


def _invoked_group() -> str | None:
    """The module of the command group this process runs, when it was started as the ``streamlb`` command (or
    ``python -m reconciler``) for a group (``streamlb events append ...``): only that module is imported, the others
    (and the reconciler core they load) are not needed. None otherwise (every other command, and an importer such
    as a test, gets them all)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    started = (getattr(spec, "name", None) == "reconciler.__main__"
               or Path(getattr(main, "__file__", None) or "").name == "streamlb")
    if not started or len(sys.argv) < 2:
        return None
    return next((m for m, group in _COMMAND_MODULES.items() if group is not None and group == sys.argv[1]), None)


@app.callback()
def _root() -> None:
    """streamlb: a deterministic, event-sourced load balancer for bare-metal Kubernetes."""


@app.command()
def version() -> None:
    """Print the version and which fastpath implementation is loaded."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as pkg_version

    try:
        v = pkg_version("streamlb")
    except PackageNotFoundError:  # running from a source tree
        v = "source"
    impl = "unknown"
    try:
        from fastpath import l2

        impl = l2.IMPLEMENTATION
    except ImportError:
        impl = "absent"
    typer.echo(f"streamlb {v} (fastpath: {impl})")


def fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"streamlb: error: {message}", markup=False)
    return typer.Exit(code)


MetallbNs = Annotated[
    Optional[list[str]],
    typer.Option(
        "--metallb-namespace",
        help="Namespace whose MetalLB objects count (repeatable).",
        envvar="STREAMLB_METALLB_NAMESPACE",
    ),
]
LbClass = Annotated[
    Optional[str],
    typer.Option("--lb-class", help="Handle only Services of this loadBalancerClass (default: no class).",
                 envvar="STREAMLB_LB_CLASS"),
]


@app.command()
def replay(
    files: Annotated[list[Path], typer.Argument(help="Input files: .evlog, JSON lines (native or watch events), YAML.")],
    output: Annotated[str, typer.Option("--output", "-o", help="json or table.")] = "table",
    at: Annotated[Optional[int], typer.Option("--at", help="Stop after the first N input records.", min=0)] = None,
    metallb_namespace: MetallbNs = None,
    lb_class: LbClass = None,
    omit: Annotated[
        Optional[list[str]],
        typer.Option("--omit", help="Leave this key out of the JSON output (repeatable; only bgp): the bgp map grows "
                                    "with nodes × peers × prefixes."),
    ] = None,
) -> None:
    """Fold the inputs offline (no Redis, no network) and print the decisions."""
    from events import inputs
    from reconciler.runtime import replay as replaymod

    if output not in ("json", "table"):
        raise fail(f"--output must be json or table, not {output!r}")
    bad = sorted(set(omit or ()) - set(replaymod.OMITTABLE))
    if bad:
        raise fail(f"--omit takes {', '.join(replaymod.OMITTABLE)}, not {bad[0]!r}")
    try:
        result = replaymod.replay(
            [str(f) for f in files], at=at,
            metallb_namespaces=tuple(metallb_namespace or ("metallb-system",)), lb_class=lb_class,
        )
    except inputs.InputError as exc:
        raise fail(str(exc)) from None
    if output == "json":
        sys.stdout.flush()
        result.write_json(sys.stdout.buffer, frozenset(omit or ()))
        sys.stdout.buffer.flush()
        return
    render_table(result, Console(highlight=False), frozenset(omit or ()))


def render_table(result, console: Console, omit: frozenset[str] = frozenset()) -> None:
    from reconciler import decisions

    obj = result.to_json_obj(omit)
    cfg = obj["config"]
    status = "[green]valid[/]" if cfg["valid"] else "[red]INVALID (previous configuration in force)[/]"
    console.print(f"events applied: {obj['events_applied']}   configuration: {status}   state hash: {obj['state_hash'][:16]}")
    for e in cfg["errors"]:
        console.print(f"  [red]config error:[/] {e}", markup=True)
    table = Table(title="Services", show_lines=False)
    for col in ("service", "ingress", "pool", "reason", "L2 owner", "last event"):
        table.add_column(col)
    for key, s in obj["services"].items():
        owners = sorted({v["node"] or f"- ({v['reason']})" for v in s["l2"].values()})
        last = s["events"][-1] if s["events"] else None
        table.add_row(
            key, ", ".join(s["ingress"]) or "-", s["pool"] or "-", s["reason"] or "",
            ", ".join(owners) or "-", f"{last['reason']}: {last['message']}" if last else "",
        )
    console.print(table)
    if obj.get("bgp"):
        bt = Table(title="BGP advertisements")
        for col in ("node", "peer", "prefix", "local_pref", "communities"):
            bt.add_column(col)
        for node, peers in obj["bgp"].items():
            for peer, ads in peers.items():
                for a in ads:
                    bt.add_row(node, peer, a["prefix"], str(a["local_pref"]), " ".join(a["communities"]))
        console.print(bt)
    if obj["ignored"]:
        console.print("ignored: " + ", ".join(f"{k} ×{n}" for k, n in obj["ignored"].items()))
    for r in obj["rejected"]:
        console.print(f"[yellow]rejected[/] {r['file']}:{r['record']}: {r['reason']}", markup=True)
    _ = decisions


_register_commands()


def main() -> None:
    from events.log import LogForbidden

    try:
        app()
    except LogForbidden as exc:  # a Redis ACL refusal a command did not report itself: one line, no traceback
        err.print(f"streamlb: error: {exc}", markup=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
