"""The ``streamlb`` program (``main``), and the ``replay`` command it can run without the command-line machinery.

Start-up is part of every replay: a plain ``replay`` command line (files, ``--output``, ``--at``, ``--omit``) is
parsed here and run without importing typer, pydantic (typer's parameter coercion) or rich; anything else goes to
the typer application of :mod:`reconciler.runtime.cli.typer_app`, which this module also hands out to importers
(``from reconciler.runtime.cli.app import app`` gets every command, as do ``fail`` and the option types).

Exit codes: 0 success; 1 operational failure; 2 bad input (unreadable file, undetectable format, bad option).
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path


class Failure(Exception):
    """A user-facing error of a command: ``streamlb: error: <message>`` on stderr and exit status ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


_err = None


def err_console():
    """The stderr console (rich is imported on first use)."""
    global _err
    if _err is None:
        from rich.console import Console

        _err = Console(stderr=True, highlight=False, soft_wrap=True)
    return _err


def run_replay(files: list[str], output: str, at: int | None, metallb_namespace: list[str] | None,
                lb_class: str | None, omit: list[str] | None) -> None:
    """The ``replay`` command (design.md §5); raises :class:`Failure` for bad options and unreadable files."""
    from events import inputs
    from reconciler.runtime import replay as replaymod

    if output not in ("json", "table"):
        raise Failure(f"--output must be json or table, not {output!r}")
    bad = sorted(set(omit or ()) - set(replaymod.OMITTABLE))
    if bad:
        raise Failure(f"--omit takes {', '.join(replaymod.OMITTABLE)}, not {bad[0]!r}")
    try:
        result = replaymod.replay(
            files, at=at, metallb_namespaces=tuple(metallb_namespace or ("metallb-system",)), lb_class=lb_class,
        )
    except inputs.InputError as exc:
        raise Failure(str(exc)) from None
    if output == "json":
        sys.stdout.flush()
        result.write_json(sys.stdout.buffer, frozenset(omit or ()))
        sys.stdout.buffer.flush()
        return
    from rich.console import Console

    render_table(result, Console(highlight=False), frozenset(omit or ()))


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


_OWN_COMMANDS = ("replay", "version")  # defined in typer_app itself: need no other command group


def _plain_replay_args(args: list[str]) -> tuple | None:
    """The arguments of ``replay`` (after the command name) when they take only the plain forms — files, and
    ``--output``/``-o`` json|table, ``--at`` N, ``--omit`` bgp as ``--opt VALUE`` or ``--opt=VALUE``, in any order —
    and no option comes from the environment: parsed here, without typer's parameter machinery (pydantic and a
    type adapter per parameter) nor typer itself. None for anything else (help, an unknown or invalid
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


def __getattr__(name: str):
    if name.startswith("__"):  # the import system's probes (``__path__``...): not the app's names
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from reconciler.runtime.cli import typer_app

    if name == "app":  # every command, for importers of the app (tests, tools)
        typer_app.register_commands()
    try:
        return getattr(typer_app, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def main() -> None:
    args = sys.argv[1:]
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
                run_replay(*plain)
                code = 0
            except Failure as exc:
                err_console().print(f"streamlb: error: {exc.message}", markup=False)
                code = exc.code
            except BrokenPipeError:  # the reader went away (``| head``): exit 1 quietly, as click does
                os._exit(1)
            _flush_and_leave(code)
            sys.exit(code)
    from reconciler.runtime.cli import typer_app

    if not args or args[0] not in _OWN_COMMANDS:
        typer_app.register_commands(args[0] if args else None)
    try:
        typer_app.app()
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
