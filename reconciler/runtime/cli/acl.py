"""``streamlb redis-acl render|secrets``: the Redis users of the three roles (see :mod:`events.acl`).

* ``render`` prints the ``aclfile`` for a cluster name, with the roles' passwords (read from files) stored as
  SHA-256 hashes — ``deploy/redis/users.acl`` is ``render`` for cluster ``default`` without passwords.
* ``secrets`` prints Kubernetes Secrets for a deployment: one per role (``username``, ``password``: fresh random
  passwords) and ``streamlb-redis-acl`` (the rendered ``users.acl``, hashes only) for the bundled Redis.

Exit codes: 0 success; 2 bad input (unknown role, unreadable or empty password file, a cluster name that cannot
be a key pattern).
"""

from __future__ import annotations

import secrets as _secrets
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from reconciler.runtime.cli.events import ClusterName, _fail

app = typer.Typer(help="Redis ACL users of the producer, reconciler and speaker roles.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)

SECRET_NAMES = {"producer": "streamlb-redis-producer", "reconciler": "streamlb-redis-reconciler",
                "speaker": "streamlb-redis-speaker"}
ACL_SECRET = "streamlb-redis-acl"


def _passwords(specs: list[str]) -> dict[str, str]:
    from events import acl

    out: dict[str, str] = {}
    for spec in specs:
        role, sep, path = spec.partition("=")
        if not sep or role not in acl.ROLES:
            raise _fail(f"--password-file {spec!r}: expected ROLE=FILE with ROLE one of {', '.join(acl.ROLES)}")
        try:
            pw = Path(path).read_text().strip()
        except OSError as exc:
            raise _fail(f"--password-file {path}: cannot read: {exc.strerror or exc}") from None
        if not pw:
            raise _fail(f"--password-file {path}: empty password")
        out[role] = pw
    return out


@app.command()
def render(
    cluster: ClusterName = "default",
    password_file: Annotated[Optional[list[str]], typer.Option(
        "--password-file", help="ROLE=FILE: the role's password (repeatable; roles: producer, reconciler, "
                                "speaker). A role without one gets a user nobody can log in as yet.")] = None,
    speaker_node: Annotated[Optional[list[str]], typer.Option(
        "--speaker-node", help="NODE or NODE=FILE: also a speaker user streamlb-speaker-NODE that may write only "
                               "NODE's heartbeat and status keys (repeatable; FILE holds its password).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write here instead of stdout.")] = None,
) -> None:
    """Print the Redis aclfile (users streamlb-producer, -reconciler, -speaker; default user off) for CLUSTER."""
    from events import acl

    nodes: dict[str, str | None] = {}
    for spec in speaker_node or []:
        node, sep, path = spec.partition("=")
        pw = None
        if sep:
            try:
                pw = Path(path).read_text().strip()
            except OSError as exc:
                raise _fail(f"--speaker-node {spec}: cannot read {path}: {exc.strerror or exc}") from None
            if not pw:
                raise _fail(f"--speaker-node {spec}: empty password")
        nodes[node] = pw
    try:
        text = acl.render(cluster, _passwords(password_file or []), speaker_nodes=nodes)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if out is None:
        sys.stdout.write(text)
        return
    try:
        out.write_text(text)
    except OSError as exc:
        raise _fail(f"{out}: cannot write: {exc.strerror or exc}") from None


@app.command("secrets")
def secrets_(
    cluster: ClusterName = "default",
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="Namespace of the Secrets.")] = "streamlb-system",
) -> None:
    """Print Kubernetes Secrets with fresh random passwords: one per role and the rendered users.acl.

    kubectl apply needs them once, before the first start: streamlb redis-acl secrets | kubectl apply -f -
    """
    import yaml

    from events import acl

    try:
        acl.check_cluster(cluster)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    passwords = {r: _secrets.token_hex(24) for r in acl.ROLES}
    labels = {"app.kubernetes.io/part-of": "streamlb"}
    docs = [{"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": {"name": SECRET_NAMES[r], "namespace": namespace, "labels": labels},
             "stringData": {"username": acl.role(r).user, "password": passwords[r]}} for r in acl.ROLES]
    docs.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                 "metadata": {"name": ACL_SECRET, "namespace": namespace, "labels": labels},
                 "stringData": {"users.acl": acl.render(cluster, passwords)}})
    sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False))
