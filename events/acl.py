"""Redis ACL roles of a streamlb installation: who may read and write which key (issue 16).

The event log decides every IP assignment and every announcement, so only the components that must append to it
may. Each component connects as its own Redis user:

* ``streamlb-producer`` — ``streamlb watch``, ``streamlb events append|import``, the Python producer API. Appends to
  the events stream. It may also read the stream and the snapshot (the watcher rebuilds its ledger of what it
  already appended from them); it writes nothing else.
* ``streamlb-reconciler`` — ``streamlb run``. Reads the stream, appends liveness events (``speaker.up`` /
  ``speaker.down`` from the heartbeat keys) and trims it (``--trim``); writes the snapshot, the decisions stream,
  the dead letters and the leader lock; reads the heartbeat and status keys.
* ``streamlb-speaker`` — ``streamlb speak``. Reads the stream, the snapshot and the decisions; writes only its
  heartbeat (``streamlb:{c}:speaker:NODE``) and status (``streamlb:{c}:status:NODE``) keys. It cannot append to
  the stream, write the snapshot or take the leader lock.

The ``default`` user is switched off. Rules are the commands streamlb issues (``events/stream.py``) and nothing
more; key patterns are literal key names of one cluster (``{`` and ``}`` are ordinary characters in Redis glob
patterns, so ``streamlb:{c}:events`` matches exactly that key). ``%R~`` grants read-only access to a key.

This module is pure: :func:`render` returns the ``aclfile`` text that ``deploy/redis/users.acl`` holds for cluster
``default`` (a test keeps the two equal) and that ``streamlb redis-acl render`` prints for any cluster name, with
passwords stored as SHA-256 hashes (``#<hex>``), never in clear.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

ROLES = ("producer", "reconciler", "speaker")

# Connection: AUTH and HELLO need no rights; streamlb's client sends no CLIENT SETINFO/SETNAME (events.stream), so
# PING (health checks, probes) is all.
CONNECTION = ("+ping",)
# What redis-py's cluster client needs to learn the slot map and the commands' key positions (Redis Cluster URLs).
CLUSTER_TOPOLOGY = ("+cluster|slots", "+command")

_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Role:
    role: str
    user: str
    commands: tuple[str, ...]  # +command / +command|subcommand, on top of -@all
    keys: tuple[str, ...]  # key selectors with {p} for the cluster's key prefix ``streamlb:{c}:``
    purpose: str


_ROLES = {
    "producer": Role(
        "producer", "streamlb-producer",
        ("+xadd", "+xrange", "+xrevrange", "+hgetall"),
        ("~{p}events", "%R~{p}snapshot"),
        "streamlb watch / events append|import: append to the events stream",
    ),
    "reconciler": Role(
        "reconciler", "streamlb-reconciler",
        ("+xadd", "+xrange", "+xrevrange", "+xread", "+xlen", "+xinfo|stream", "+xtrim", "+hgetall", "+hset",
         "+set", "+get", "+pexpire", "+del", "+eval", "+scan", "+info"),
        ("~{p}events", "~{p}snapshot", "~{p}deadletter", "~{p}decisions", "~{p}leader", "%R~{p}speaker:*",
         "%R~{p}status:*"),
        "streamlb run: fold, publish decisions, snapshots, dead letters, leader lock, liveness events",
    ),
    "speaker": Role(
        "speaker", "streamlb-speaker",
        ("+xrange", "+xrevrange", "+xread", "+hgetall", "+get", "+set", "+del"),
        ("%R~{p}events", "%R~{p}snapshot", "%R~{p}decisions", "~{p}speaker:*", "~{p}status:*"),
        "streamlb speak: fold and announce; heartbeat and status keys only",
    ),
}

ROLE_OF_USER = {r.user: r.role for r in _ROLES.values()}


def role(name: str) -> Role:
    return _ROLES[name]


def check_cluster(cluster: str) -> None:
    """Cluster names rendered into ACL key patterns must not contain glob characters or spaces."""
    if not _CLUSTER_NAME.match(cluster):
        raise ValueError(f"cluster name {cluster!r} cannot be rendered into ACL key patterns "
                         "(letters, digits, '.', '_', '-' only)")


def prefix(cluster: str) -> str:
    return f"streamlb:{{{cluster}}}:"


def rules(name: str, cluster: str = "default") -> list[str]:
    """The ACL rules of role ``name`` for ``cluster`` (without the user's password)."""
    check_cluster(cluster)
    r = _ROLES[name]
    cmds = ["-@all", *CONNECTION, *CLUSTER_TOPOLOGY, *r.commands]
    keys = [k.format(p=prefix(cluster)) for k in r.keys]
    return ["resetchannels", *cmds, *keys]


_NODE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def node_speaker_user(node: str) -> str:
    return f"streamlb-speaker-{node}"


def node_speaker_rules(node: str, cluster: str = "default") -> list[str]:
    """A speaker user bound to one node: it may write only that node's heartbeat and status keys, so a compromised
    node cannot delete or forge another node's heartbeat (which the reconcilers would turn into speaker.down/up)."""
    check_cluster(cluster)
    if len(node) > 253 or not _NODE.match(node):
        raise ValueError(f"{node!r} is not a Kubernetes node name")
    p = prefix(cluster)
    r = _ROLES["speaker"]
    keys = [k.format(p=p) for k in r.keys if k.startswith("%R")] + [f"~{p}speaker:{node}", f"~{p}status:{node}"]
    return ["resetchannels", "-@all", *CONNECTION, *CLUSTER_TOPOLOGY, *r.commands, *keys]


def password_hash(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def user_line(name: str, cluster: str = "default", password: str | None = None) -> str:
    r = _ROLES[name]
    auth = [f"#{password_hash(password)}"] if password is not None else []
    return " ".join(["user", r.user, "reset", "on", *auth, *rules(name, cluster)])


DEFAULT_USER = "user default off resetpass resetkeys resetchannels -@all"


def render(cluster: str = "default", passwords: Mapping[str, str] | None = None, *,
           speaker_nodes: Mapping[str, str | None] | None = None, extra_users: tuple[str, ...] = ()) -> str:
    """The ``aclfile`` for ``cluster``. ``passwords`` maps role -> password; a role without one gets no password
    (the user exists but nobody can log in as it). ``speaker_nodes`` maps node -> password (or None) for per-node
    speaker users (:func:`node_speaker_rules`). ``extra_users`` are appended verbatim (e.g. a Sentinel user)."""
    passwords = dict(passwords or {})
    unknown = set(passwords) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown role(s): {', '.join(sorted(unknown))} (roles: {', '.join(ROLES)})")
    for r, pw in passwords.items():
        if not pw:
            raise ValueError(f"empty password for role {r}")
    # Redis reads an aclfile as user lines only (no comments): the roles are documented in the README
    lines = [DEFAULT_USER]
    for name in ROLES:
        lines.append(user_line(name, cluster, passwords.get(name)))
    for node in sorted(speaker_nodes or {}):
        pw = (speaker_nodes or {})[node]
        if pw is not None and not pw:
            raise ValueError(f"empty password for node {node}")
        auth = [f"#{password_hash(pw)}"] if pw is not None else []
        lines.append(" ".join(["user", node_speaker_user(node), "reset", "on", *auth,
                               *node_speaker_rules(node, cluster)]))
    lines.extend(extra_users)
    return "\n".join(lines) + "\n"


def roles_allowed(command: str, key: str | None) -> list[str]:
    """The roles allowed to run ``command`` (``xadd``, ``xinfo|stream``) on ``key``: for error messages."""
    cmd = command.lower()
    out = []
    for name in ROLES:
        r = _ROLES[name]
        allowed = {c[1:] for c in (*r.commands, *CONNECTION, *CLUSTER_TOPOLOGY)}
        if cmd not in allowed and cmd.split("|")[0] not in allowed:
            continue
        if key is None or any(_selector_allows(sel, cmd, key) for sel in r.keys):
            out.append(name)
    return out


_READ_ONLY = frozenset({"xrange", "xrevrange", "xread", "xlen", "xinfo|stream", "xinfo", "hgetall", "get", "scan"})


def _selector_allows(selector: str, cmd: str, key: str) -> bool:
    m = re.match(r"^streamlb:\{([^}]*)\}:", key)
    if not m:
        return False
    perm, _, pattern = selector.partition("~")
    if perm == "%R" and cmd not in _READ_ONLY:
        return False
    p = pattern.format(p=prefix(m.group(1)))
    return key.startswith(p[:-1]) if p.endswith("*") else key == p
