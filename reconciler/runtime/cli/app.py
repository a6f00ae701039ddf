"""The ``streamlb`` command line (typer + rich). Thin: every command calls core or runtime functions.

Exit codes: 0 success; 1 operational failure; 2 bad input (unreadable file, undetectable format, bad option).

Start-up: the command groups of the other modules (and what they import: Redis, asyncio, the wire codecs, rich)
are loaded only when the command line may need them. ``main()`` skips them for the commands defined here
(``replay``, ``version``); importing ``app`` from this module (tests, other tools) gets every command.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

_app = typer.Typer(
    name="streamlb",
    help="streamlb: a deterministic, event-sourced load balancer for bare-metal Kubernetes (reads MetalLB's CRDs).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
_err = None


def err_console():
    """The stderr console (rich is imported on first use)."""
    global _err
    if _err is None:
        from rich.console import Console

        _err = Console(stderr=True, highlight=False, soft_wrap=True)
    return _err


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


_registered = False


def _register_commands() -> None:
    global _registered
    if _registered:
        return
    _registered = True
    for mod_name, group in _COMMAND_MODULES.items():
        full = f"reconciler.runtime.cli.{mod_name}"
        try:
            mod = importlib.import_module(full)
        except ModuleNotFoundError as exc:
            if exc.name == full:
                continue
            raise
        if hasattr(mod, "register"):
            mod.register(_app)
        else:
            _app.add_typer(mod.app, name=group)


@_app.callback()
def _root() -> None:
    """streamlb: a deterministic, event-sourced load balancer for bare-metal Kubernetes."""


@_app.command()
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
    err_console().print(f"streamlb: error: {message}", markup=False)
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


@_app.command()
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
    _run_replay([str(f) for f in files], output, at, metallb_namespace, lb_class, omit)


def _run_replay(files: list[str], output: str, at: int | None, metallb_namespace: list[str] | None,
                lb_class: str | None, omit: list[str] | None) -> None:
    from events import inputs
    from reconciler.runtime import replay as replaymod

    if output not in ("json", "table"):
        raise fail(f"--output must be json or table, not {output!r}")
    bad = sorted(set(omit or ()) - set(replaymod.OMITTABLE))
    if bad:
        raise fail(f"--omit takes {', '.join(replaymod.OMITTABLE)}, not {bad[0]!r}")
    try:
        result = replaymod.replay(
            files, at=at, metallb_namespaces=tuple(metallb_namespace or ("metallb-system",)), lb_class=lb_class,
        )
    except inputs.InputError as exc:
        raise fail(str(exc)) from None
    if output == "json":
        sys.stdout.flush()
        result.write_json(sys.stdout.buffer, frozenset(omit or ()))
        sys.stdout.buffer.flush()
        return
    from rich.console import Console

    render_table(result, Console(highlight=False), frozenset(omit or ()))


def _plain_replay_args(args: list[str]) -> tuple | None:
    """The arguments of ``replay`` (after the command name) when they take only the plain forms — files, and
    ``--output``/``-o`` json|table, ``--at`` N, ``--omit`` bgp as ``--opt VALUE`` or ``--opt=VALUE``, in any order —
    and no option comes from the environment: parsed here, without typer's parameter machinery (pydantic and a
    type adapter per parameter: ~80 ms of every start-up). None for anything else (help, an unknown or invalid
    option or value, ``--``, ``-``): typer parses those and reports the errors."""
    if os.environ.get("STREAMLB_METALLB_NAMESPACE") is not None or os.environ.get("STREAMLB_LB_CLASS") is not None:
        return None
    files: list[str] = []
    output, at, omit = "table", None, []
    rest = iter(args)
    for tok in rest:
        if not tok.startswith("-"):
            files.append(str(Path(tok)))  # as typer's Path argument gives it
            continue
        name, eq, value = tok.partition("=")
        if name not in ("--output", "-o", "--at", "--omit") or (eq and name == "-o"):
            return None
        if not eq:
            got = next(rest, None)
            if got is None:
                return None
            value = got
        if name in ("--output", "-o") and value in ("json", "table"):
            output = value
        elif name == "--at" and value.isascii() and value.isdigit():
            at = int(value)
        elif name == "--omit" and value == "bgp":
            omit.append(value)
        else:
            return None
    return (files, output, at, None, None, omit or None) if files else None


def render_table(result, console, omit: frozenset[str] = frozenset()) -> None:
    from rich.table import Table

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


_OWN_COMMANDS = ("replay", "version")  # defined in this module: need no other command group


def __getattr__(name: str):
    if name == "app":  # every command, for importers of the app (tests, tools)
        _register_commands()
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    args = sys.argv[1:]
    if not args or args[0] not in _OWN_COMMANDS:
        _register_commands()
    # ``replay`` builds millions of objects that live until the process ends: the cyclic collector stays paused
    # (no young pass over the whole state when it would be re-enabled) and the process ends without tearing the
    # state down object by object (a final collection plus ~10^7 deallocations: ~1 s on issue 14's log) once its
    # output is flushed
    quick_exit = args[:1] == ["replay"]
    if quick_exit:
        gc.disable()
        plain = _plain_replay_args(args[1:])
        if plain is not None:
            try:
                _run_replay(*plain)
                code = 0
            except typer.Exit as exc:
                code = exc.exit_code
            except BrokenPipeError:  # the reader went away (``| head``): exit 1 quietly, as click does
                os._exit(1)
            _flush_and_leave(code)
            sys.exit(code)
    try:
        _app()
    except SystemExit as exc:
        if quick_exit and (exc.code is None or isinstance(exc.code, int)):
            _flush_and_leave(exc.code or 0)
        raise
    except Exception as exc:
        from events.log import LogForbidden

        if not isinstance(exc, LogForbidden):
            raise
        # a Redis ACL refusal a command did not report itself: one line, no traceback
        err_console().print(f"streamlb: error: {exc}", markup=False)
        sys.exit(1)


def _flush_and_leave(code: int) -> None:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # e.g. a closed pipe: the ordinary exit path reports it
        return
    os._exit(code)


if __name__ == "__main__":
    main()
