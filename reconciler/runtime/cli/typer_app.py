"""The ``streamlb`` command line (typer + rich). Thin: every command calls core or runtime functions.

Exit codes: 0 success; 1 operational failure; 2 bad input (unreadable file, undetectable format, bad option).

The program's entry point is :func:`reconciler.runtime.cli.app.main` (which parses plain ``replay`` lines without
loading this module); importing ``app`` from either module gets every command. The command groups of the other
modules (and what they import: Redis, asyncio, the wire codecs, rich) are loaded by :func:`register_commands`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Optional

import typer

from reconciler.runtime.cli.app import Failure, err_console, run_replay

_app = typer.Typer(
    name="streamlb",
    help="streamlb: a deterministic, event-sourced load balancer for bare-metal Kubernetes (reads MetalLB's CRDs).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

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


_registered: set[str] = set()  # command modules already added to the app


def register_commands(group: str | None = None) -> None:
    """Add the command groups to the app: every one, or (``group``, the first word of a command line naming a
    group, such as ``events``) only that group's module, so that ``streamlb events append`` does not import the
    reconciler core and the wire codecs it never uses."""
    wanted = [m for m, g in _COMMAND_MODULES.items() if group is not None and g == group] or list(_COMMAND_MODULES)
    for mod_name in wanted:
        if mod_name in _registered:
            continue
        _registered.add(mod_name)
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
            _app.add_typer(mod.app, name=_COMMAND_MODULES[mod_name])


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
    try:
        run_replay([str(f) for f in files], output, at, metallb_namespace, lb_class, omit)
    except Failure as exc:
        raise fail(exc.message, exc.code) from None


app = _app  # the commands of this module; reconciler.runtime.cli.app.app has every command registered
