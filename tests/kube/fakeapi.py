"""A small Kubernetes API server on 127.0.0.1 for tests: real HTTP, the real list/watch protocol.

It is not a mock of a client: the ``kubernetes`` Python client and ``kubectl`` talk to it over TCP. What it
implements, as the real API server does:

* discovery (``/version``, ``/api``, ``/apis``, ``/api/v1``, ``/apis/GROUP/VERSION``) so ``kubectl`` can find
  resources, including the ``metallb.io`` CRDs (BGPPeer served as v1beta1 and v1beta2);
* LIST with ``metadata.resourceVersion``, ``limit``/``continue`` pages from one snapshot; items of built-in types
  carry no ``apiVersion``/``kind`` (as the real server's typed lists), custom resources do;
* WATCH (``watch=true``) as a chunked stream of JSON lines from a ``resourceVersion``: without one (or ``0``) it
  starts with synthetic ADDED events; ``allowWatchBookmarks`` gets BOOKMARK events; ``timeoutSeconds`` ends the
  stream; a ``resourceVersion`` older than the compaction floor gets an ERROR event with a 410 ``Expired`` Status
  (what the real server sends once etcd compacted);
* GET/POST/PUT/PATCH (JSON merge patch; strategic merge treated alike for the fields used) /DELETE on objects and
  on the ``status`` subresource, optimistic concurrency: a write carrying a stale ``metadata.resourceVersion`` gets
  409 Conflict; a create of an existing name gets 409 AlreadyExists;
* one global, increasing resourceVersion, as etcd's revision.

Test controls: :meth:`FakeKube.put` / :meth:`FakeKube.remove` change objects (as another client would),
:meth:`FakeKube.compact` forgets history, :meth:`FakeKube.fail` injects error responses for matching requests,
``outage`` answers 503 to everything, ``requests`` records every request.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Kind:
    group: str
    versions: tuple[str, ...]
    plural: str
    kind: str
    namespaced: bool
    short: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()

    @property
    def builtin(self) -> bool:
        return self.group != "metallb.io"


KINDS = [
    Kind("", ("v1",), "services", "Service", True, ("svc",), ("status",)),
    Kind("", ("v1",), "nodes", "Node", False, ("no",), ("status",)),
    Kind("", ("v1",), "namespaces", "Namespace", False, ("ns",), ("status",)),
    Kind("", ("v1",), "events", "Event", True, ("ev",)),
    Kind("", ("v1",), "secrets", "Secret", True),
    Kind("", ("v1",), "configmaps", "ConfigMap", True, ("cm",)),
    Kind("discovery.k8s.io", ("v1",), "endpointslices", "EndpointSlice", True),
    Kind("coordination.k8s.io", ("v1",), "leases", "Lease", True),
    Kind("metallb.io", ("v1beta1",), "ipaddresspools", "IPAddressPool", True, (), ("status",)),
    Kind("metallb.io", ("v1beta1",), "l2advertisements", "L2Advertisement", True),
    Kind("metallb.io", ("v1beta1",), "bgpadvertisements", "BGPAdvertisement", True),
    Kind("metallb.io", ("v1beta2", "v1beta1"), "bgppeers", "BGPPeer", True),
    Kind("metallb.io", ("v1beta1",), "communities", "Community", True),
    Kind("metallb.io", ("v1beta1",), "bfdprofiles", "BFDProfile", True),
    Kind("metallb.io", ("v1beta1",), "servicel2statuses", "ServiceL2Status", True, (), ("status",)),
    Kind("metallb.io", ("v1beta1",), "servicebgpstatuses", "ServiceBGPStatus", True, (), ("status",)),
]
BY_PLURAL = {(k.group, k.plural): k for k in KINDS}
BY_KIND = {k.kind: k for k in KINDS}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


@dataclass
class Fault:
    method: str | None
    path: re.Pattern
    status: int
    times: int
    reason: str = "InternalError"


class FakeKube:
    def __init__(self, bookmark_interval: float = 0.5) -> None:
        self.lock = threading.Condition()
        self.rv = 1000
        self.objects: dict[tuple[str, str, str, str], dict] = {}  # (group, plural, ns, name) -> object
        self.history: list[tuple[int, str, str, str, dict]] = []  # (rv, group, plural, type, object)
        self.floor = 0  # watches from an rv below this get 410
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []  # (method, path?query)
        self.outage = False
        self.on_request: Callable[[str, str], None] | None = None  # called (method, path) before each request
        self.bookmark_interval = bookmark_interval
        self.closing = False
        self.generation = 0  # end_watches() bumps it; open watch streams end without sending more
        self._pages: dict[str, tuple[int, list[dict]]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------------------------------------
    # lifecycle

    def start(self) -> "FakeKube":
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fakeapi", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self.lock:
            self.closing = True
            self.lock.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def kubeconfig(self, path) -> str:
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "u", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "u"}}],
        }))
        return str(path)

    # ----------------------------------------------------------------------------------------------------------
    # test controls (another client changing the cluster)

    def _record(self, group: str, plural: str, typ: str, obj: dict) -> None:
        self.history.append((self.rv, group, plural, typ, copy.deepcopy(obj)))
        self.lock.notify_all()

    def put(self, obj: dict) -> dict:
        """Create or replace ``obj`` (apiVersion/kind/metadata as in a manifest); returns the stored object."""
        with self.lock:
            return self._store(obj, None)

    def _store(self, obj: dict, expect_rv: str | None, create_only: bool = False) -> dict:
        kind = BY_KIND[obj["kind"]]
        meta = obj.setdefault("metadata", {})
        ns = meta.get("namespace", "") if kind.namespaced else ""
        key = (kind.group, kind.plural, ns, meta["name"])
        old = self.objects.get(key)
        if old is not None and create_only:
            raise _HttpError(409, "AlreadyExists", f'{kind.plural} "{meta["name"]}" already exists')
        if expect_rv and old is not None and old["metadata"]["resourceVersion"] != expect_rv:
            raise _HttpError(409, "Conflict", f'Operation cannot be fulfilled on {kind.plural} "{meta["name"]}": '
                                              "the object has been modified; please apply your changes to the "
                                              "latest version and try again")
        if expect_rv and old is None:
            raise _HttpError(404, "NotFound", f'{kind.plural} "{meta["name"]}" not found')
        self.rv += 1
        new = copy.deepcopy(obj)
        m = new["metadata"]
        if old is not None:
            m["uid"] = old["metadata"]["uid"]
            m["creationTimestamp"] = old["metadata"]["creationTimestamp"]
        else:
            m.setdefault("uid", str(uuid.uuid4()))
            m.setdefault("creationTimestamp", _now())
        m["resourceVersion"] = str(self.rv)
        if not kind.namespaced:
            m.pop("namespace", None)
        self.objects[key] = new
        self._record(kind.group, kind.plural, "MODIFIED" if old is not None else "ADDED", new)
        return copy.deepcopy(new)

    def remove(self, kind_name: str, namespace: str, name: str) -> None:
        with self.lock:
            self._delete(BY_KIND[kind_name], namespace, name)

    def _delete(self, kind: Kind, ns: str, name: str) -> dict:
        key = (kind.group, kind.plural, ns if kind.namespaced else "", name)
        old = self.objects.pop(key, None)
        if old is None:
            raise _HttpError(404, "NotFound", f'{kind.plural} "{name}" not found')
        self.rv += 1
        old = copy.deepcopy(old)
        old["metadata"]["resourceVersion"] = str(self.rv)
        self._record(kind.group, kind.plural, "DELETED", old)
        return old

    def get(self, kind_name: str, namespace: str, name: str) -> dict | None:
        kind = BY_KIND[kind_name]
        with self.lock:
            o = self.objects.get((kind.group, kind.plural, namespace if kind.namespaced else "", name))
            return copy.deepcopy(o) if o else None

    def compact(self) -> None:
        """Forget all history up to now: watches from any older resourceVersion get 410 Gone."""
        with self.lock:
            self.floor = self.rv
            self.history = []

    def end_watches(self) -> None:
        """End every open watch stream now (as an API server restart or a load balancer timeout would)."""
        with self.lock:
            self.generation += 1
            self.lock.notify_all()

    def fail(self, path_regex: str, status: int, times: int = 1, method: str | None = None,
             reason: str = "InternalError") -> None:
        with self.lock:
            self.faults.append(Fault(method, re.compile(path_regex), status, times, reason))

    def objects_of(self, kind_name: str) -> list[dict]:
        kind = BY_KIND[kind_name]
        with self.lock:
            return [copy.deepcopy(o) for k, o in sorted(self.objects.items()) if k[:2] == (kind.group, kind.plural)]

    def count(self, method: str, pattern: str) -> int:
        rx = re.compile(pattern)
        with self.lock:
            return sum(1 for m, p in self.requests if m == method and rx.search(p))


class _HttpError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_fake: FakeKube

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    # ----------------------------------------------------------------------------------------------------------

    def _send_json(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, e: _HttpError) -> None:
        self._send_json(e.code, _status(e.code, e.reason, e.message))

    def _body(self) -> Any:
        raw = self._raw
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise _HttpError(400, "BadRequest", "invalid JSON body") from None

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        fake = self.server_fake
        n = int(self.headers.get("Content-Length") or 0)
        self._raw = self.rfile.read(n) if n else b""  # always consumed, so keep-alive stays in step
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with fake.lock:
            fake.requests.append((method, self.path))
            fault = None
            for f in fake.faults:
                if f.times > 0 and (f.method is None or f.method == method) and f.path.search(parts.path):
                    f.times -= 1
                    fault = f
                    break
            outage = fake.outage
            hook = fake.on_request
        if hook is not None:
            hook(method, parts.path)
        try:
            if outage:
                raise _HttpError(503, "ServiceUnavailable", "the API server is unavailable")
            if fault is not None:
                raise _HttpError(fault.status, fault.reason, f"injected {fault.status}")
            self._route(method, parts.path, query)
        except _HttpError as e:
            self._error(e)
        except (BrokenPipeError, ConnectionResetError):
            pass

    # ----------------------------------------------------------------------------------------------------------

    def _route(self, method: str, path: str, query: dict[str, str]) -> None:
        segs = [s for s in path.split("/") if s]
        if path == "/version":
            return self._send_json(200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0-fake",
                                         "platform": "linux/amd64"})
        if path == "/api":
            return self._send_json(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
        if path == "/apis":
            groups: dict[str, list[str]] = {}
            for k in KINDS:
                if k.group:
                    groups.setdefault(k.group, [])
                    for v in k.versions:
                        if v not in groups[k.group]:
                            groups[k.group].append(v)
            for vs in groups.values():  # Kubernetes version priority: v1 > v1beta2 > v1beta1
                vs.sort(key=lambda v: (v.count("beta") + v.count("alpha") * 2, [-int(x) for x in
                                                                              re.findall(r"\d+", v)]))
            return self._send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                 "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}}
                for g, vs in sorted(groups.items())]})
        if segs[:1] == ["api"] and len(segs) >= 2:
            group, version, rest = "", segs[1], segs[2:]
        elif segs[:1] == ["apis"] and len(segs) >= 3:
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            raise _HttpError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            if method != "GET":
                raise _HttpError(405, "MethodNotAllowed", "method not allowed")
            return self._discovery(group, version)
        ns = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            ns, rest = rest[1], rest[2:]
        kind = BY_PLURAL.get((group, rest[0]))
        if kind is None or version not in kind.versions:
            raise _HttpError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and sub not in kind.subresources:
            raise _HttpError(404, "NotFound", f"no subresource {sub}")
        if name is None:
            if method == "GET":
                if query.get("watch") in ("true", "1"):
                    return self._watch(kind, version, ns, query)
                return self._list(kind, version, ns, query)
            if method == "POST":
                body = self._body()
                if not isinstance(body, dict) or body.get("kind") != kind.kind:
                    raise _HttpError(400, "BadRequest", f"expected a {kind.kind}")
                body.setdefault("metadata", {})
                if kind.namespaced:
                    body["metadata"]["namespace"] = ns
                body["metadata"].pop("resourceVersion", None)
                if "status" in kind.subresources:
                    body.pop("status", None)  # as the real server: status is set through the subresource
                with self.server_fake.lock:
                    stored = self.server_fake._store(body, None, create_only=True)
                return self._send_json(201, self._versioned(stored, kind, version))
            raise _HttpError(405, "MethodNotAllowed", "method not allowed")
        return self._item(method, kind, version, ns, name, sub)

    def _discovery(self, group: str, version: str) -> None:
        gv = f"{group}/{version}" if group else version
        res = []
        for k in KINDS:
            if k.group == group and version in k.versions:
                res.append({"name": k.plural, "singularName": k.kind.lower(), "namespaced": k.namespaced,
                            "kind": k.kind, "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                            **({"shortNames": list(k.short)} if k.short else {})})
                for s in k.subresources:
                    res.append({"name": f"{k.plural}/{s}", "singularName": "", "namespaced": k.namespaced,
                                "kind": k.kind, "verbs": ["get", "patch", "update"]})
        if not res:
            raise _HttpError(404, "NotFound", "the server could not find the requested resource")
        self._send_json(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": res})

    def _versioned(self, obj: dict, kind: Kind, version: str, in_list: bool = False) -> dict:
        out = copy.deepcopy(obj)
        if in_list and kind.builtin:
            out.pop("apiVersion", None)
            out.pop("kind", None)
        else:
            out["apiVersion"] = f"{kind.group}/{version}" if kind.group else version
            out["kind"] = kind.kind
        return out

    def _select(self, kind: Kind, ns: str, query: dict[str, str]) -> Callable[[dict], bool]:
        fsel = query.get("fieldSelector", "")
        want_name = None
        for term in filter(None, fsel.split(",")):
            k, _, v = term.partition("=")
            if k == "metadata.name":
                want_name = v.lstrip("=")

        want_labels = dict(t.split("=", 1) for t in query.get("labelSelector", "").split(",") if "=" in t)

        def ok(o: dict) -> bool:
            m = o["metadata"]
            labels = m.get("labels") or {}
            return ((not ns or m.get("namespace", "") == ns) and (want_name is None or m["name"] == want_name)
                    and all(labels.get(k) == v for k, v in want_labels.items()))

        return ok

    def _list(self, kind: Kind, version: str, ns: str, query: dict[str, str]) -> None:
        fake = self.server_fake
        limit = int(query.get("limit") or 0)
        token = query.get("continue")
        with fake.lock:
            if token:
                if token not in fake._pages:
                    raise _HttpError(410, "Expired", "the provided continue parameter is too old")
                rv, items = fake._pages.pop(token)
            else:
                ok = self._select(kind, ns, query)
                rv = fake.rv
                items = [o for k, o in sorted(fake.objects.items()) if k[:2] == (kind.group, kind.plural) and ok(o)]
                items = [self._versioned(o, kind, version, in_list=True) for o in items]
            meta: dict[str, Any] = {"resourceVersion": str(rv)}
            if limit and len(items) > limit:
                rest = items[limit:]
                items = items[:limit]
                nxt = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
                fake._pages[nxt] = (rv, rest)
                meta["continue"] = nxt
                meta["remainingItemCount"] = len(rest)
        self._send_json(200, {"kind": f"{kind.kind}List", "apiVersion": f"{kind.group}/{version}" if kind.group
                              else version, "metadata": meta, "items": items})

    def _watch(self, kind: Kind, version: str, ns: str, query: dict[str, str]) -> None:
        fake = self.server_fake
        ok = self._select(kind, ns, query)
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        timeout = float(query.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        rv_param = query.get("resourceVersion", "")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(event: dict) -> None:
            data = json.dumps(event).encode() + b"\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        try:
            with fake.lock:
                generation = fake.generation
                if rv_param in ("", "0"):
                    initial = [self._versioned(o, kind, version) for k, o in sorted(fake.objects.items())
                               if k[:2] == (kind.group, kind.plural) and ok(o)]
                    start = fake.rv
                    too_old = False
                else:
                    start = int(rv_param)
                    initial = []
                    too_old = start < fake.floor
            if too_old:
                send({"type": "ERROR", "object": _status(410, "Expired",
                                                         f"too old resource version: {start} ({fake.floor})")})
                return self._end()
            for o in initial:
                send({"type": "ADDED", "object": o})
            sent_rv = start
            last_bookmark = time.monotonic()
            while True:
                with fake.lock:
                    pending = [h for h in fake.history if h[0] > sent_rv]
                    if not pending and not fake.closing:
                        wait = min(deadline - time.monotonic(),
                                   (last_bookmark + fake.bookmark_interval - time.monotonic()) if bookmarks else 3600)
                        if wait > 0:
                            fake.lock.wait(timeout=min(wait, 1.0))
                        pending = [h for h in fake.history if h[0] > sent_rv]
                    current = fake.rv
                    closing = fake.closing or fake.generation != generation
                    outage = fake.outage
                if outage or closing:
                    return self._end()
                for rv, g, p, typ, obj in pending:
                    sent_rv = rv
                    if (g, p) == (kind.group, kind.plural) and ok(obj):
                        send({"type": typ, "object": self._versioned(obj, kind, version)})
                if time.monotonic() >= deadline:
                    return self._end()
                if bookmarks and time.monotonic() - last_bookmark >= fake.bookmark_interval:
                    if not pending:
                        sent_rv = max(sent_rv, current)
                    send({"type": "BOOKMARK", "object": {"kind": kind.kind, "apiVersion": f"{kind.group}/{version}"
                                                         if kind.group else version,
                                                         "metadata": {"resourceVersion": str(sent_rv)}}})
                    last_bookmark = time.monotonic()
        except (BrokenPipeError, ConnectionResetError, OSError):
            return None

    def _end(self) -> None:
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True

    def _item(self, method: str, kind: Kind, version: str, ns: str, name: str, sub: str | None) -> None:
        fake = self.server_fake
        key = (kind.group, kind.plural, ns if kind.namespaced else "", name)
        if method == "GET":
            with fake.lock:
                o = fake.objects.get(key)
            if o is None:
                raise _HttpError(404, "NotFound", f'{kind.plural} "{name}" not found')
            return self._send_json(200, self._versioned(o, kind, version))
        if method == "DELETE":
            with fake.lock:
                old = fake._delete(kind, ns, name)
            return self._send_json(200, self._versioned(old, kind, version))
        body = self._body()
        if not isinstance(body, dict):
            raise _HttpError(400, "BadRequest", "expected an object")
        with fake.lock:
            cur = fake.objects.get(key)
            if cur is None:
                raise _HttpError(404, "NotFound", f'{kind.plural} "{name}" not found')
            expect = (body.get("metadata") or {}).get("resourceVersion")
            if method == "PUT":
                if not expect:
                    raise _HttpError(422, "Invalid", "metadata.resourceVersion: Invalid value: must be specified "
                                                     "for an update")
                new = copy.deepcopy(body)
            else:
                ctype = self.headers.get("Content-Type", "")
                if "merge-patch" not in ctype:
                    raise _HttpError(415, "UnsupportedMediaType", f"unsupported patch type {ctype!r}")
                new = merge_patch(cur, body)
            if sub == "status":  # only status changes through the subresource
                merged = copy.deepcopy(cur)
                merged["status"] = new.get("status", {})
                new = merged
            elif kind.subresources and "status" in kind.subresources:
                new["status"] = copy.deepcopy(cur.get("status", {}))  # and not through the main resource
            new["kind"] = kind.kind
            new.setdefault("metadata", {})["name"] = name
            if kind.namespaced:
                new["metadata"]["namespace"] = ns
            if new == cur or (_strip_rv(new) == _strip_rv(cur)):
                return self._send_json(200, self._versioned(cur, kind, version))  # no-op write: rv unchanged
            stored = fake._store(new, expect)
        self._send_json(200, self._versioned(stored, kind, version))


def _strip_rv(o: dict) -> dict:
    o = copy.deepcopy(o)
    o.get("metadata", {}).pop("resourceVersion", None)
    o.pop("apiVersion", None)
    return o
