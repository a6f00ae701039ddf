"""The Redis-stream ``EventLog`` (design.md §2): the only module of streamlb that imports ``redis``.

Keys, for cluster name ``c`` (braces put one cluster's keys in one Redis Cluster hash slot)::

    streamlb:{c}:events        stream   the log; entry fields e = msgpack event, v = format version
    streamlb:{c}:snapshot      hash     pos, v, state, hash
    streamlb:{c}:deadletter    stream   reason, e — added under the original entry's ID
    streamlb:{c}:decisions     stream   pos, hash, d
    streamlb:{c}:speaker:{n}   string   heartbeat of the speaker on node n (PX ttl)
    streamlb:{c}:status:{n}    string   JSON of the speaker's status() on node n (PX ttl, longer than the heartbeat)
    streamlb:{c}:leader        string   leader lock of ``streamlb run`` (SET NX PX)

Theory of operation
-------------------
* Appends are pipelined ``XADD key * e <bytes> v <int>`` in chunks of ``batch`` commands, without MULTI: a
  pipeline is one round trip, and the server applies its commands in order, so positions come back ascending.
* Catch-up reads pages with ``XRANGE key (after + COUNT page`` (exclusive start, Redis >= 6.2); following uses
  ``XREAD BLOCK ms COUNT page STREAMS key after``. No consumer groups: every replica reads every entry.
* An entry missing ``e`` or with a ``v`` that is not an integer is still returned as a :class:`Record` (``data``
  empty / ``version`` 0), so the caller dead-letters it instead of the adapter hiding it.
* Connection errors become :class:`events.log.LogUnavailable`; the caller retries with backoff.

URLs (``STREAMLB_REDIS_URL``): everything redis-py's ``from_url`` takes (``redis://``, ``rediss://`` for TLS,
``unix://``, ``user:password@``), plus ``redis+sentinel://[user:pw@]host:port[,host:port...]/service[/db]`` for
Sentinel and ``redis+cluster://[user:pw@]host:port[,host:port...]`` for Redis Cluster; ``rediss+sentinel://`` and
``rediss+cluster://`` are the same over TLS (to the sentinels and to the servers). TLS query parameters, for every
TLS form: ``ssl_ca_certs=FILE`` (the CA that signed the server's certificate; default: the system's CAs),
``ssl_certfile=FILE`` and ``ssl_keyfile=FILE`` (a client certificate, for ``tls-auth-clients yes``),
``ssl_cert_reqs=required|optional|none`` (default ``required``: the server's certificate is verified),
``ssl_check_hostname=true|false``. Sentinel: ``sentinel_username=``/``sentinel_password=`` when the sentinels
require their own login. Credentials not in the URL come from ``STREAMLB_REDIS_USERNAME`` and
``STREAMLB_REDIS_PASSWORD`` (or ``STREAMLB_REDIS_PASSWORD_FILE``), so one URL can be shared by components that log
in as different users (:mod:`events.acl`).

Rights: a command Redis refuses with ``NOPERM`` (an ACL) raises :class:`events.log.LogForbidden` naming the command,
the key, the user and the role that may do it; nothing is retried (the rights will not change by waiting).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.cluster
import redis.exceptions
import redis.sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry

from events import acl, codec, schema
from events.log import LogForbidden, LogUnavailable, Record, Snapshot
from events.position import ZERO, Position

DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_CLUSTER = "default"

_CONN_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.ClusterDownError,
                redis.exceptions.TryAgainError, redis.sentinel.MasterNotFoundError)


@dataclass(frozen=True, slots=True)
class Keys:
    """The Redis keys of one streamlb cluster (design.md §2)."""

    cluster: str

    def _k(self, name: str) -> str:
        return f"streamlb:{{{self.cluster}}}:{name}"

    @property
    def events(self) -> str:
        return self._k("events")

    @property
    def snapshot(self) -> str:
        return self._k("snapshot")

    @property
    def deadletter(self) -> str:
        return self._k("deadletter")

    @property
    def decisions(self) -> str:
        return self._k("decisions")

    @property
    def leader(self) -> str:
        return self._k("leader")

    def speaker(self, node: str) -> str:
        return self._k(f"speaker:{node}")

    @property
    def speaker_prefix(self) -> str:
        return self._k("speaker:")

    def status(self, node: str) -> str:
        return self._k(f"status:{node}")

    @property
    def status_prefix(self) -> str:
        return self._k("status:")


def _hosts(netloc: str, default_port: int) -> tuple[str | None, str | None, list[tuple[str, int]]]:
    username = password = None
    if "@" in netloc:
        cred, netloc = netloc.rsplit("@", 1)
        user, sep, pw = cred.partition(":")
        username = unquote(user) or None if sep else None
        password = unquote(pw if sep else cred) or None
    out = []
    for part in netloc.split(","):
        if part.startswith("["):
            host, _, rest = part[1:].partition("]")
            port = rest.lstrip(":")
        else:
            host, sep, port = part.rpartition(":")
            if not sep:
                host, port = part, ""
        out.append((host, int(port) if port else default_port))
    return username, password, out


_TLS_QUERY = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname", "ssl_ca_path")


def _tls_options(url: str, query: dict[str, list[str]]) -> dict:
    out: dict = {}
    for name in _TLS_QUERY:
        if name in query:
            v = query[name][-1]
            if name == "ssl_check_hostname":
                if v.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(f"{_redact(url)}: ssl_check_hostname must be true or false, not {v!r}")
                out[name] = v.lower() in ("true", "1", "yes")
            elif name == "ssl_cert_reqs" and v not in ("required", "optional", "none"):
                raise ValueError(f"{_redact(url)}: ssl_cert_reqs must be required, optional or none, not {v!r}")
            else:
                out[name] = v
    return out


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    cred, host = parts.netloc.rsplit("@", 1)
    user = cred.split(":", 1)[0] if ":" in cred else ""
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def connect(url: str = DEFAULT_URL, *, socket_timeout: float | None = 30.0, username: str | None = None,
            password: str | None = None) -> redis.Redis:
    """A redis-py client for ``url`` (see the module docstring for the accepted forms). ``username`` and
    ``password`` are used when the URL carries none; without them, the environment's
    (:func:`credentials_from_env`), so every connection a component opens logs in as the same user."""
    if username is None and password is None:
        username, password = credentials_from_env()
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    # driver_info=None: no CLIENT SETINFO on connect (Redis 7.0 lacks it, and the ACL roles do not grant it)
    common = {"socket_timeout": socket_timeout, "socket_connect_timeout": 5.0, "driver_info": None}
    if parts.scheme in ("redis+sentinel", "rediss+sentinel"):
        user, pw, hosts = _hosts(parts.netloc, 26379)
        path = [p for p in parts.path.split("/") if p]
        if not path:
            raise ValueError(f"{_redact(url)}: a Sentinel URL needs the service name: redis+sentinel://host:port/SERVICE")
        service, db = path[0], int(path[1]) if len(path) > 1 else 0
        tls = {"ssl": True, **_tls_options(url, query)} if parts.scheme.startswith("rediss") else {}
        skw: dict = {"socket_timeout": 5.0, **tls}
        if "sentinel_password" in query:
            skw["password"] = query["sentinel_password"][-1]
        if "sentinel_username" in query:
            skw["username"] = query["sentinel_username"][-1]
        sentinel = redis.sentinel.Sentinel(
            hosts, sentinel_kwargs=skw, **_creds(user, pw, username, password), db=db, **tls, **common,
        )
        return sentinel.master_for(service)
    if parts.scheme in ("redis+cluster", "rediss+cluster"):
        user, pw, hosts = _hosts(parts.netloc, 6379)
        nodes = [redis.cluster.ClusterNode(h, p) for h, p in hosts]
        tls = {"ssl": True, **_tls_options(url, query)} if parts.scheme.startswith("rediss") else {}
        try:  # the cluster client connects at once to learn the slot map
            return redis.cluster.RedisCluster(  # type: ignore[return-value]
                startup_nodes=nodes, **_creds(user, pw, username, password), **tls, **common
            )
        except redis.exceptions.NoPermissionError as exc:
            who = _creds(user, pw, username, password)["username"] or "default"
            raise LogForbidden(forbidden_message(str(exc), "CLUSTER SLOTS", None, who)) from None
    if parts.scheme == "rediss":
        _tls_options(url, query)  # validate; redis-py reads them from the URL
    kw: dict = dict(common)
    if parts.username is None and parts.password is None:
        kw.update({k: v for k, v in (("username", username), ("password", password)) if v})
    # no silent reconnect-and-retry: a restart must surface so the daemon re-checks its position
    return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **kw)


def _creds(url_user: str | None, url_pw: str | None, user: str | None, pw: str | None) -> dict:
    """The URL's credentials if it has any, else the given ones (never a mix of both)."""
    if url_user is not None or url_pw is not None:
        return {"username": url_user, "password": url_pw}
    return {"username": user, "password": pw}


def credentials_from_env(environ: dict | None = None) -> tuple[str | None, str | None]:
    """``STREAMLB_REDIS_USERNAME`` and ``STREAMLB_REDIS_PASSWORD`` (or the file ``STREAMLB_REDIS_PASSWORD_FILE``)."""
    import os

    env = os.environ if environ is None else environ
    user = env.get("STREAMLB_REDIS_USERNAME") or None
    pw = env.get("STREAMLB_REDIS_PASSWORD") or None
    path = env.get("STREAMLB_REDIS_PASSWORD_FILE")
    if pw is None and path:
        try:
            with open(path) as f:
                pw = f.read().strip() or None
        except OSError as exc:
            raise ValueError(f"STREAMLB_REDIS_PASSWORD_FILE {path}: {exc.strerror or exc}") from None
    return user, pw


def username_of(client) -> str:
    """The Redis user a client logs in as (``default`` without one)."""
    for get in (lambda: client.connection_pool.connection_kwargs, lambda: client.nodes_manager.connection_kwargs):
        try:
            kw = get()
        except AttributeError:
            continue
        return kw.get("username") or "default"
    return "default"


def _pos(raw: bytes | str) -> Position:
    # hot in catch-up (once per entry): server IDs are always "<ms>-<seq>", so skip Position.parse's checks
    if isinstance(raw, bytes):
        ms, _, seq = raw.partition(b"-")
    else:
        ms, _, seq = raw.partition("-")
    try:
        return Position(int(ms), int(seq))
    except ValueError:
        return Position.parse(raw)  # the precise error


def _record(entry_id: bytes, fields: dict) -> Record:
    data = fields.get(b"e", b"")
    try:
        version = int(fields.get(b"v", b"0"))
    except ValueError:
        version = 0
    return Record(_pos(entry_id), data, version)


_VERSIONS = {b"1": 1, b"2": 2, b"3": 3}


def _records(rows: list) -> list[Record]:
    """Records from a raw ``XRANGE``/``XREAD`` reply (``[[id, [field, value, ...]], ...]``, bytes, unparsed).

    Hot in catch-up: an entry written by streamlb has exactly ``e <blob> v <n>``, read without building a dict;
    anything else goes through :func:`_record`'s field lookup (a missing or bad field becomes an empty ``data``
    or version 0, so the caller dead-letters the entry)."""
    out: list[Record] = []
    add = out.append
    versions = _VERSIONS
    for entry_id, fields in rows:
        if fields is not None and len(fields) == 4 and fields[0] == b"e" and fields[2] == b"v":
            version = versions.get(fields[3])
            if version is None:
                try:
                    version = int(fields[3])
                except ValueError:
                    version = 0
            ms, _, seq = entry_id.partition(b"-")
            try:
                pos = Position(int(ms), int(seq))
            except ValueError:
                pos = Position.parse(entry_id)
            add(Record(pos, fields[1], version))
        else:
            f = dict(zip(fields[::2], fields[1::2])) if fields else {}
            add(_record(entry_id, f))
    return out


def _raw_command(client: redis.Redis, *args) -> object:
    """One command on a pooled connection, its reply as the wire parser (hiredis) returns it, without redis-py's
    per-command reply callbacks (for ``XRANGE`` they build a dict per entry: more than the fold's decode costs).
    A connection-level failure drops the connection."""
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_command(*args)
        return conn.read_response()
    except _CONN_ERRORS:
        conn.disconnect()
        raise
    finally:
        pool.release(conn)


class StreamLog:
    """An ``EventLog`` on a Redis stream, plus the cluster's other keys (dead letters, decisions, leader lock,
    heartbeats) that ``streamlb run`` and the speakers use."""

    def __init__(self, client: redis.Redis, cluster: str = DEFAULT_CLUSTER, *, page: int = 1000,
                 batch: int = 1000) -> None:
        if not cluster or any(c in cluster for c in "{}"):
            raise ValueError(f"invalid cluster name {cluster!r}")
        self.client = client
        self.user = username_of(client)
        self.keys = Keys(cluster)
        self.page = page
        self.batch = batch

    @classmethod
    def from_url(cls, url: str = DEFAULT_URL, cluster: str = DEFAULT_CLUSTER, **kw) -> StreamLog:
        """Connect to ``url``; credentials the URL lacks come from the environment (:func:`credentials_from_env`)."""
        return cls(connect(url), cluster, **kw)

    def close(self) -> None:
        self.client.close()

    # -- EventLog -----------------------------------------------------------------------------------------

    def append(self, events: Iterable[schema.Event]) -> list[Position]:
        return self.append_raw(codec.encode(e) for e in events)

    def append_raw(self, data: Iterable[bytes], version: int = codec.FORMAT_VERSION) -> list[Position]:
        out: list[Position] = []
        chunk: list[bytes] = []
        v = str(version)
        for blob in data:
            chunk.append(bytes(blob))
            if len(chunk) >= self.batch:
                out.extend(self._xadd(chunk, v))
                chunk = []
        if chunk:
            out.extend(self._xadd(chunk, v))
        return out

    def append_chunks(self, chunks: Iterable[list[bytes]], version: int = codec.FORMAT_VERSION
                      ) -> Iterator[list[Position]]:
        """Append each chunk of encoded events as one pipelined round trip, yielding each chunk's positions.

        One chunk stays in flight: chunk k+1 is sent before the replies of chunk k are read, so the server works
        through a chunk while the caller prepares the next one (a producer decoding its input overlaps its CPU
        with the server's and with the network). On an error the connection is dropped (it may still owe
        replies), so no reply is ever read by the wrong command."""
        if not self.packable:
            for chunk in chunks:
                yield self.append_raw(chunk, version)
            return
        key, v = self.keys.events, str(version)
        packed = ((_pack_xadds(key, [bytes(b) for b in chunk], v), len(chunk)) for chunk in chunks if chunk)
        for replies in self._pipelined(packed, keep=True):
            yield [_pos(r) for r in replies]

    @property
    def packable(self) -> bool:
        """Can :meth:`append_packed` be used (one server, not a Redis Cluster client)?"""
        return not isinstance(self.client, redis.cluster.RedisCluster)

    def pack(self, blobs: list[bytes], version: int = codec.FORMAT_VERSION) -> bytes:
        """``XADD`` of every blob to this log's stream, in the wire protocol, as one buffer for
        :meth:`append_packed` (a pure function of the blobs: it can be built in another process)."""
        return _pack_xadds(self.keys.events, blobs, str(version))

    def append_packed(self, payloads: Iterable[tuple[bytes, int]]) -> Iterator[int]:
        """Send each ``(payload, n)`` (``n`` XADDs made by :meth:`pack`) as one pipelined round trip, one in
        flight as :meth:`append_chunks` does; yields ``n`` once all its entries are appended (their IDs are not
        parsed: the producer CLI only counts them)."""
        if not self.packable:
            raise TypeError("append_packed needs a single-server client (not Redis Cluster)")
        for replies in self._pipelined(payloads, keep=False):
            yield replies  # type: ignore[misc]

    def _pipelined(self, payloads: Iterable[tuple[bytes, int]], keep: bool) -> Iterator:
        key = self.keys.events
        pool = self.client.connection_pool
        with _wrap():
            conn = pool.get_connection()
        owed = 0
        try:
            for payload, n in payloads:
                if not n:
                    continue
                with _wrap(self, "XADD", key):
                    conn.send_packed_command([payload])
                    if owed:
                        prev, owed = owed, n
                        yield _read_replies(conn, prev, keep)
                    else:
                        owed = n
            if owed:
                with _wrap(self, "XADD", key):
                    prev, owed = owed, 0
                    yield _read_replies(conn, prev, keep)
        finally:
            if owed:
                conn.disconnect()
            pool.release(conn)

    def append_fields(self, entries: Iterable[dict]) -> list[Position]:
        """Append entries with arbitrary fields (tests of dead-lettering; imports of foreign entries)."""
        out: list[Position] = []
        with _wrap(self, "XADD", self.keys.events):
            pipe = self.client.pipeline(transaction=False)
            for f in entries:
                pipe.xadd(self.keys.events, f)
            out = [_pos(r) for r in pipe.execute()]
        return out

    def _xadd(self, chunk: list[bytes], v: str) -> list[Position]:
        key = self.keys.events
        with _wrap(self, "XADD", key):
            if len(chunk) == 1:
                return [_pos(self.client.xadd(key, {"e": chunk[0], "v": v}))]
            if isinstance(self.client, redis.cluster.RedisCluster):
                pipe = self.client.pipeline(transaction=False)
                for blob in chunk:
                    pipe.xadd(key, {"e": blob, "v": v})
                return [_pos(r) for r in pipe.execute()]
            return [_pos(r) for r in _send_packed(self.client, _pack_xadds(key, chunk, v), len(chunk))]

    def read(self, after: Position = ZERO, limit: int | None = None) -> Iterator[Record]:
        """Paged ``XRANGE``; each page is fetched when the previous one is consumed."""
        left = limit
        cursor = after
        while left is None or left > 0:
            count = self.page if left is None else min(self.page, left)
            with _wrap(self, "XRANGE", self.keys.events):
                rows = self.client.xrange(self.keys.events, min=f"({cursor}", max="+", count=count)
            if not rows:
                return
            for entry_id, fields in rows:
                rec = _record(entry_id, fields)
                cursor = rec.position
                yield rec
            if left is not None:
                left -= len(rows)
            if len(rows) < count:
                return

    def read_page(self, after: Position, count: int | None = None) -> list[Record]:
        key = self.keys.events
        with _wrap(self, "XRANGE", key):
            if isinstance(self.client, redis.cluster.RedisCluster):
                rows = self.client.xrange(key, min=f"({after}", max="+", count=count or self.page)
                return [_record(i, f) for i, f in rows]
            rows = _raw_command(self.client, "XRANGE", key, f"({after}", "+", "COUNT", count or self.page)
        return _records(rows)  # type: ignore[arg-type]

    def newest(self, count: int) -> list[Record]:
        """The last ``count`` entries, oldest first."""
        if count <= 0:
            return []
        with _wrap(self, "XREVRANGE", self.keys.events):
            rows = self.client.xrevrange(self.keys.events, max="+", min="-", count=count)
        return [_record(i, f) for i, f in reversed(rows)]

    def follow(self, after: Position, timeout_ms: int) -> list[Record]:
        key = self.keys.events
        if isinstance(self.client, redis.cluster.RedisCluster):
            with _wrap(self, "XREAD", key):
                resp = self.client.xread({key: str(after)}, count=self.page, block=max(1, timeout_ms))
            if not resp:
                return []
            # RESP2: [[key, [(id, fields), ...]]]; RESP3: {key: [[...]]}
            if isinstance(resp, dict):
                rows = next(iter(resp.values()))[0]
            else:
                rows = resp[0][1]
            return [_record(i, f) for i, f in rows]
        with _wrap(self, "XREAD", key):
            resp = _raw_command(self.client, "XREAD", "COUNT", self.page, "BLOCK", max(1, timeout_ms), "STREAMS", key,
                                str(after))
        if not resp:
            return []
        # raw RESP2: [[key, [[id, [field, value, ...]], ...]]]; RESP3: {key: [[id, [...]], ...]}
        rows = next(iter(resp.values())) if isinstance(resp, dict) else resp[0][1]  # type: ignore[union-attr,index]
        return _records(rows)

    def head(self) -> Position:
        with _wrap(self, "XREVRANGE", self.keys.events):
            rows = self.client.xrevrange(self.keys.events, max="+", min="-", count=1)
        return _pos(rows[0][0]) if rows else ZERO

    def last_id(self) -> Position:
        """The stream's last generated ID (survives trimming; ``ZERO`` when the key does not exist). A value
        below a replica's applied position means the stream went backwards (Redis lost data)."""
        with _wrap(self, "XINFO STREAM", self.keys.events):
            try:
                info = self.client.xinfo_stream(self.keys.events)
            except redis.exceptions.ResponseError as exc:
                if "no such key" in str(exc).lower():
                    return ZERO
                raise
        return _pos(info["last-generated-id"])

    def has(self, position: Position) -> bool:
        with _wrap(self, "XRANGE", self.keys.events):
            return bool(self.client.xrange(self.keys.events, min=str(position), max=str(position), count=1))

    def first(self) -> Position | None:
        with _wrap(self, "XRANGE", self.keys.events):
            rows = self.client.xrange(self.keys.events, min="-", max="+", count=1)
        return _pos(rows[0][0]) if rows else None

    def epoch(self) -> str:
        """The identity (``run_id``) of the Redis process serving this cluster's keys: it changes on every
        restart or failover. On Redis Cluster, of the primary that owns the keys' slot."""
        with _wrap(self, "INFO", None):
            if isinstance(self.client, redis.cluster.RedisCluster):
                node = self.client.get_node_from_key(self.keys.events)
                info = self.client.info("server", target_nodes=node)
                if isinstance(info, dict) and "run_id" not in info and len(info) == 1:
                    info = next(iter(info.values()))
            else:
                info = self.client.info("server")
        return str(info.get("run_id", ""))

    def probe(self, position: Position) -> tuple[str, bool]:
        """(epoch, whether the entry at ``position`` still exists). An existing entry means no entry after it
        was trimmed (trimming removes a prefix). One round trip on a single Redis."""
        if isinstance(self.client, redis.cluster.RedisCluster):
            return self.epoch(), position == ZERO or self.has(position)
        with _wrap(self, "INFO/XRANGE", self.keys.events):
            pipe = self.client.pipeline(transaction=False)
            pipe.info("server")
            pipe.xrange(self.keys.events, min=str(position), max=str(position), count=1)
            info, rows = pipe.execute()
        return str(info.get("run_id", "")), position == ZERO or bool(rows)

    def entries_added(self) -> int:
        """How many entries were ever added to the stream (0 if it does not exist)."""
        with _wrap(self, "XINFO STREAM", self.keys.events):
            try:
                info = self.client.xinfo_stream(self.keys.events)
            except redis.exceptions.ResponseError:
                return 0
        return int(info.get("entries-added", info.get("length", 0)))

    def length(self) -> int:
        with _wrap(self, "XLEN", self.keys.events):
            return int(self.client.xlen(self.keys.events))

    def load_snapshot(self) -> Snapshot | None:
        with _wrap(self, "HGETALL", self.keys.snapshot):
            h = self.client.hgetall(self.keys.snapshot)
        if not h or b"pos" not in h or b"state" not in h:
            return None
        return Snapshot(_pos(h[b"pos"]), int(h.get(b"v", b"0")), h[b"state"], h.get(b"hash", b"").decode())

    def save_snapshot(self, snapshot: Snapshot) -> None:
        with _wrap(self, "HSET", self.keys.snapshot):
            self.client.hset(self.keys.snapshot, mapping={
                "pos": str(snapshot.position), "v": str(snapshot.version), "state": snapshot.state,
                "hash": snapshot.state_hash,
            })

    # -- the cluster's other keys -------------------------------------------------------------------------

    def deadletter(self, position: Position, reason: str, data: bytes) -> bool:
        """Record a bad entry under its original ID. False if it is already there (another replica was first)."""
        with _wrap(self, "XADD", self.keys.deadletter):
            try:
                self.client.xadd(self.keys.deadletter, {"reason": reason, "e": data}, id=str(position))
            except redis.exceptions.ResponseError as exc:
                if "equal or smaller" in str(exc):
                    return False
                raise
        return True

    def deadletters(self, after: Position = ZERO, limit: int | None = None) -> Iterator[tuple[Position, str, bytes]]:
        cursor, left = after, limit
        while left is None or left > 0:
            count = self.page if left is None else min(self.page, left)
            with _wrap(self, "XRANGE", self.keys.deadletter):
                rows = self.client.xrange(self.keys.deadletter, min=f"({cursor}", max="+", count=count)
            for i, f in rows:
                cursor = _pos(i)
                yield cursor, f.get(b"reason", b"").decode("utf-8", "replace"), f.get(b"e", b"")
            if left is not None:
                left -= len(rows)
            if len(rows) < count:
                return

    def publish_decisions(self, position: Position, state_hash: str, payload: bytes,
                          maxlen: int | None = 100_000) -> Position:
        with _wrap(self, "XADD", self.keys.decisions):
            return _pos(self.client.xadd(
                self.keys.decisions, {"pos": str(position), "hash": state_hash, "d": payload},
                maxlen=maxlen, approximate=True,
            ))

    def decisions(self, after: Position = ZERO, count: int = 1000) -> list[tuple[Position, dict]]:
        with _wrap(self, "XRANGE", self.keys.decisions):
            rows = self.client.xrange(self.keys.decisions, min=f"({after}", max="+", count=count)
        return [(_pos(i), f) for i, f in rows]

    def try_lead(self, replica: str, ttl_ms: int) -> bool:
        """Take or keep the leader lock. Renewal is compare-and-set, so a replica that lost the lock while
        paused cannot extend someone else's."""
        key = self.keys.leader
        with _wrap(self, "SET", key):
            if self.client.set(key, replica, nx=True, px=ttl_ms):
                return True
            return bool(self.client.eval(_RENEW, 1, key, replica, ttl_ms))

    def release_lead(self, replica: str) -> None:
        with _wrap(self, "EVAL", self.keys.leader):
            self.client.eval(_RELEASE, 1, self.keys.leader, replica)

    def leader(self) -> str | None:
        with _wrap(self, "GET", self.keys.leader):
            v = self.client.get(self.keys.leader)
        return v.decode() if v is not None else None

    def heartbeat(self, node: str, ttl_ms: int) -> None:
        with _wrap(self, "SET", self.keys.speaker(node)):
            self.client.set(self.keys.speaker(node), b"1", px=ttl_ms)

    def clear_heartbeat(self, node: str) -> None:
        with _wrap(self, "DEL", self.keys.speaker(node)):
            self.client.delete(self.keys.speaker(node))

    def alive_speakers(self) -> set[str]:
        prefix = self.keys.speaker_prefix
        pattern = prefix.replace("{", "\\{").replace("}", "\\}") + "*"
        out = set()
        with _wrap(self, "SCAN", None):
            kw = {"target_nodes": redis.cluster.RedisCluster.PRIMARIES} if isinstance(
                self.client, redis.cluster.RedisCluster) else {}
            for k in self.client.scan_iter(match=pattern, count=1000, **kw):
                out.add((k.decode() if isinstance(k, bytes) else k)[len(prefix):])
        return out

    def _scan_suffixes(self, prefix: str) -> list[str]:
        pattern = prefix.replace("{", "\\{").replace("}", "\\}") + "*"
        out = []
        with _wrap(self, "SCAN", None):
            kw = {"target_nodes": redis.cluster.RedisCluster.PRIMARIES} if isinstance(
                self.client, redis.cluster.RedisCluster) else {}
            for k in self.client.scan_iter(match=pattern, count=1000, **kw):
                out.append((k.decode() if isinstance(k, bytes) else k)[len(prefix):])
        return sorted(set(out))

    # --- speaker status keys (streamlb:{c}:status:{node}): written by each speaker, read by doctor and the leader

    def publish_status(self, node: str, payload: bytes, ttl_ms: int) -> None:
        """Store the speaker's status JSON for ``node`` (replaced whole; expires after ``ttl_ms``)."""
        with _wrap(self, "SET", self.keys.status(node)):
            self.client.set(self.keys.status(node), payload, px=ttl_ms)

    def clear_status(self, node: str) -> None:
        with _wrap(self, "DEL", self.keys.status(node)):
            self.client.delete(self.keys.status(node))

    def speaker_statuses(self) -> dict[str, dict]:
        """node -> the last status each speaker published (JSON objects; unreadable values are skipped)."""
        import json

        nodes = self._scan_suffixes(self.keys.status_prefix)
        if not nodes:
            return {}
        with _wrap(self, "GET", self.keys.status_prefix + "*"):
            values = [self.client.get(self.keys.status(n)) for n in nodes]
        out: dict[str, dict] = {}
        for n, v in zip(nodes, values):
            if v is None:
                continue  # expired between SCAN and GET
            try:
                obj = json.loads(v)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out[n] = obj
        return out

    def deadletter_count(self) -> int:
        with _wrap(self, "XLEN", self.keys.deadletter):
            return int(self.client.xlen(self.keys.deadletter))

    def newest_deadletter(self) -> tuple[Position, str] | None:
        """The newest dead letter's ID and reason, or None."""
        with _wrap(self, "XREVRANGE", self.keys.deadletter):
            rows = self.client.xrevrange(self.keys.deadletter, max="+", min="-", count=1)
        if not rows:
            return None
        return _pos(rows[0][0]), rows[0][1].get(b"reason", b"").decode("utf-8", "replace")

    def last_decisions(self) -> tuple[Position, dict] | None:
        """The newest decisions entry (its ID and fields), or None."""
        with _wrap(self, "XREVRANGE", self.keys.decisions):
            rows = self.client.xrevrange(self.keys.decisions, max="+", min="-", count=1)
        return (_pos(rows[0][0]), rows[0][1]) if rows else None

    def acl_dryrun(self, user: str, *command: str) -> tuple[bool | None, str]:
        """Would Redis let ``user`` run ``command`` (``ACL DRYRUN``, Redis >= 7)? (True, "") when allowed, (False,
        Redis' explanation) when refused, (None, the error) when this connection may not ask or ``user`` is unknown.
        """
        with _wrap():
            try:
                reply = self.client.execute_command("ACL", "DRYRUN", user, *command)
            except redis.exceptions.ResponseError as exc:  # NOPERM, unknown user, unknown command, Redis < 7
                return None, str(exc)
        if reply in (b"OK", "OK"):
            return True, ""
        return False, reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)

    def acl_user_enabled(self, user: str) -> bool | None:
        """Is ``user`` on (``ACL GETUSER`` flags)? None when it does not exist or this connection may not ask."""
        with _wrap():
            try:
                info = self.client.acl_getuser(user)
            except redis.exceptions.ResponseError:
                return None
        if not info:
            return None
        flags = [f.decode() if isinstance(f, bytes) else f for f in info.get("flags", ())]
        return "on" in flags

    def trim_below(self, position: Position) -> int:
        """Drop entries with IDs below ``position`` (approximate, whole macro-nodes). Returns how many."""
        with _wrap(self, "XTRIM", self.keys.events):
            return int(self.client.xtrim(self.keys.events, minid=str(position), approximate=True))


_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def _pack_xadds(key: str, blobs: list[bytes], v: str) -> bytes:
    """``XADD key * e <blob> v <v>`` for every blob, in the wire protocol (RESP), as one buffer.

    redis-py's pipeline builds each command through several Python calls per argument (~10 us per entry, the
    producer's largest cost); the command is the same for every entry except the blob, so its head and tail are
    packed once and each entry costs one ``%`` format."""
    k = key.encode()
    vb = v.encode()
    head = b"*7\r\n$4\r\nXADD\r\n$%d\r\n%s\r\n$1\r\n*\r\n$1\r\ne\r\n" % (len(k), k)
    tail = b"\r\n$1\r\nv\r\n$%d\r\n%s\r\n" % (len(vb), vb)
    return b"".join([b"%s$%d\r\n%s%s" % (head, len(blob), blob, tail) for blob in blobs])


def _send_packed(client: redis.Redis, payload: bytes, replies: int) -> list:
    """Send pre-packed commands on one pooled connection and read their ``replies`` (a pipeline without MULTI).

    Every reply is read even after an error reply, so the connection stays in step; then the first error is
    raised (as redis-py's pipeline does). A connection-level failure drops the connection."""
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_packed_command([payload])
        return _read_replies(conn, replies)
    except _CONN_ERRORS:
        conn.disconnect()
        raise
    finally:
        pool.release(conn)


def _read_replies(conn, replies: int, keep: bool = True) -> list | int:
    """The next ``replies`` replies of ``conn`` (with ``keep=False`` only their number). Every reply is read even
    after an error reply, so the connection stays in step; then the first error is raised (as redis-py's pipeline
    does).

    With redis-py's hiredis parser, the replies already received are taken from its reader directly (one C call
    each); the socket is read only through ``read_response``, so every connection-level failure is still
    redis-py's to handle."""
    parser = getattr(conn, "_parser", None)
    reader = getattr(parser, "_reader", None)
    usable = _NOT_ENOUGH_DATA is not None and reader is not None and isinstance(parser, _HiredisParser)
    push = getattr(parser, "_hiredis_PushNotificationType", None)  # RESP3 out-of-band messages: not replies
    fast = usable
    out: list = []
    add = out.append
    first_error: redis.exceptions.ResponseError | None = None
    got = 0
    while got < replies:
        if fast:
            r = reader.gets()
            if r is not _NOT_ENOUGH_DATA:
                if push is not None and isinstance(r, push):
                    parser.handle_push_response(r)
                    continue
                got += 1
                if isinstance(r, Exception):
                    if not isinstance(r, redis.exceptions.ResponseError):
                        raise r
                    first_error = first_error or r
                elif keep:
                    add(r)
                continue
        try:  # reads the socket (refilling the reader) and returns one reply
            r = conn.read_response()
        except redis.exceptions.ResponseError as exc:
            first_error = first_error or exc
        else:
            if keep:
                add(r)
        got += 1
        fast = usable and getattr(parser, "_reader", None) is reader
    if first_error is not None:
        raise first_error
    return out if keep else replies


try:  # redis-py's hiredis parser and its "no complete reply yet" marker (internal: the fast path is optional)
    from redis._parsers.hiredis import NOT_ENOUGH_DATA as _NOT_ENOUGH_DATA, _HiredisParser
except ImportError:  # pragma: no cover - another redis-py
    _NOT_ENOUGH_DATA, _HiredisParser = None, type(None)


class _wrap:
    """Turn connection-level failures into :class:`LogUnavailable` (the caller retries) and ACL refusals into
    :class:`LogForbidden` naming the command, the key, the user and the role that may do it."""

    __slots__ = ("log", "command", "key")

    def __init__(self, log: StreamLog | None = None, command: str = "", key: str | None = None) -> None:
        self.log, self.command, self.key = log, command, key

    def __enter__(self) -> None:
        return None

    def __exit__(self, et, ev, tb) -> bool:
        if ev is None:
            return False
        if isinstance(ev, redis.exceptions.NoPermissionError):
            raise LogForbidden(forbidden_message(str(ev), self.command, self.key,
                                                 self.log.user if self.log is not None else "?")) from None
        if isinstance(ev, _CONN_ERRORS):
            raise LogUnavailable(f"redis unavailable: {ev}") from ev
        return False


def forbidden_message(error: str, command: str, key: str | None, user: str) -> str:
    """One line: what Redis refused, to whom, and which streamlb role may do it."""
    m = re.search(r"run the '([^']+)' command", error)
    refused = m.group(1) if m else command.split("/")[0].lower()
    target = f" on {key}" if key else ""
    roles = acl.roles_allowed(refused.replace(" ", "|"), key)
    if roles:
        need = f"that needs the Redis user of the {' or '.join(roles)} role ({', '.join(acl.role(r).user for r in roles)})"
    else:
        need = "no streamlb role may do that"
    return (f"Redis refused {refused.upper()}{target} to user {user!r} (NOPERM): {need}; "
            "check STREAMLB_REDIS_USERNAME / the URL's user for this component")
