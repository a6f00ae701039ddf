"""Least privilege on the event log, proven against real redis-server processes with an ``aclfile`` and TLS
(issue 16). The servers, their certificates (openssl, tests/tls_certs.py) and the users file (``streamlb redis-acl
render`` for the test's cluster name, with fresh passwords) are made by the tests; every process is stopped by PID.

The oracle is Redis itself: a separate administrative user (not a streamlb role) reads the keys and the server's
``ACL LOG`` — which records every command the server refused for lack of rights. So "each role can do its job"
means the component ran *and* Redis refused it nothing; "cannot" means Redis refused it (NOPERM, in the ACL log),
streamlb said so in one line, and the key is unchanged.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from events import acl, log as logmod, schema, stream
from events.position import ZERO
from tests.integration import manifests as m
from tests.integration.speaker_env import SpeakProc
from tests.redis_server import REDIS_CLI, DaemonProc, RedisServer, free_cluster_port, free_port
from tests.tls_certs import Pki, make_pki

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = "sec"
ADMIN = "streamlb-test-admin"

CONFIG = m.docs("""
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: metallb-system}
spec: {addresses: [192.168.77.10-192.168.77.19]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: metallb-system}
""", m.node("node-a"), m.node("node-b"), m.service("web", "10.96.0.10", "10.244.0.9", "node-a", namespace="shop"))


# --------------------------------------------------------------------------------------------------------------
# Servers


class Secured:
    """Passwords, the users file and an admin client factory shared by the fixtures."""

    def __init__(self, workdir: Path, pki: Pki, extra_users: tuple[str, ...] = (),
                 speaker_nodes: tuple[str, ...] = ()) -> None:
        self.pki = pki
        self.passwords = {r: secrets.token_hex(16) for r in acl.ROLES}
        self.node_passwords = {n: secrets.token_hex(16) for n in speaker_nodes}
        self.admin_password = secrets.token_hex(16)
        self.aclfile = workdir / "users.acl"
        # the users file exactly as `streamlb redis-acl render` writes it, plus the test's own admin user
        pwdir = workdir / "passwords"
        pwdir.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "reconciler", "redis-acl", "render", "--cluster", CLUSTER, "--out", str(self.aclfile)]
        for r, pw in self.passwords.items():
            (pwdir / r).write_text(pw + "\n")
            args += ["--password-file", f"{r}={pwdir / r}"]
        for node, pw in self.node_passwords.items():
            (pwdir / f"node-{node}").write_text(pw)
            args += ["--speaker-node", f"{node}={pwdir / f'node-{node}'}"]
        subprocess.run(args, check=True, cwd=ROOT, env=_env(), timeout=60, capture_output=True)
        assert self.aclfile.read_text() == acl.render(CLUSTER, self.passwords, speaker_nodes=self.node_passwords)
        with open(self.aclfile, "a") as f:
            f.write(f"user {ADMIN} on >{self.admin_password} ~* &* +@all\n")
            for line in extra_users:
                f.write(line + "\n")

    def tls_kwargs(self) -> dict:
        return {"ssl": True, "ssl_ca_certs": str(self.pki.ca), "ssl_certfile": str(self.pki.client_cert),
                "ssl_keyfile": str(self.pki.client_key)}

    def admin(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, username=ADMIN, password=self.admin_password,
                           socket_timeout=10, **self.tls_kwargs())

    def user(self, role: str) -> str:
        return acl.role(role).user

    def cred(self, role: str) -> str:
        return f"{self.user(role)}:{self.passwords[role]}@"


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLB_")}
    env.update(PYTHONPATH=str(ROOT), **extra)
    return env


class TlsRedis(RedisServer):
    """A redis-server that listens only on TLS (``port 0``), requires client certificates and loads the users
    file; readiness is checked with the admin user over TLS."""

    def __init__(self, workdir: Path, sec: Secured, *, port: int | None = None, extra: list[str] | None = None):
        super().__init__(workdir, port=port, extra=extra)
        self.sec = sec

    def argv(self) -> list[str]:
        return super().argv() + ["--port", "0", "--tls-port", str(self.port), "--aclfile", str(self.sec.aclfile),
                                 "--tls-replication", "yes", *self.sec.pki.redis_args()]

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.dir / 'redis.log').read_text()[-2000:]}")
            try:
                if self.sec.admin(self.port).ping():
                    return
            except redis.exceptions.RedisError:
                time.sleep(0.05)
        raise RuntimeError("TLS redis-server not ready")

    def url(self, role: str | None = None, query: str | None = None) -> str:  # type: ignore[override]
        cred = self.sec.cred(role) if role else ""
        return f"rediss://{cred}127.0.0.1:{self.port}/0?{self.sec.pki.query() if query is None else query}"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), ips=("127.0.0.1", "10.89.7.254"))


@pytest.fixture
def secured(tmp_path: Path, pki: Pki) -> Secured:
    return Secured(tmp_path, pki)


@pytest.fixture
def tls_redis(tmp_path: Path, secured: Secured):
    srv = TlsRedis(tmp_path / "redis", secured).start()
    yield srv
    srv.stop()


def keys(cluster: str = CLUSTER) -> stream.Keys:
    return stream.Keys(cluster)


def acl_log(admin: redis.Redis) -> list[tuple[str, str, str]]:
    """(user, reason, object) of every refusal the server recorded, oldest first."""
    out = []
    for e in reversed(admin.acl_log(1000)):
        user, reason, obj = (e[k].decode() if isinstance(e[k], bytes) else e[k] for k in ("username", "reason", "object"))
        out.append((user, reason, obj))
    return out


def refused_roles(admin: redis.Redis) -> set[str]:
    return {u for u, _, _ in acl_log(admin) if u in acl.ROLE_OF_USER}


def snapshot_of(admin: redis.Redis, cluster: str = CLUSTER) -> dict:
    return admin.hgetall(keys(cluster).snapshot)


def yaml_file(tmp: Path, text: str = CONFIG) -> Path:
    p = tmp / f"cfg-{time.monotonic_ns()}.yaml"
    p.write_text(text)
    return p


def cli(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env or _env(), timeout=timeout)


def stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return proc.returncode


def wait_for(cond, timeout: float = 60.0, what: str = "condition", show=None):
    """Poll ``cond``; on timeout fail with ``what`` and, if given, ``show()`` (e.g. a process's log)."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f"\n{show()}" if show else ""))
        time.sleep(0.05)


def expected_owner(admin_log: stream.StreamLog) -> dict[str, str]:
    """IP -> L2 owner from an offline fold of the whole stream (read with the admin user)."""
    from reconciler import fold, planning, state as statemod

    st = statemod.new()
    for rec in admin_log.read():
        fold.apply(st, logmod.decode_record(rec))
    return {ip: n for n in ("node-a", "node-b") for ip in planning.node_plan(st, n).l2}


def admin_log(srv: TlsRedis) -> stream.StreamLog:
    return stream.StreamLog(srv.sec.admin(srv.port), CLUSTER)


def speak(srv: TlsRedis, tmp: Path, node: str, role: str = "speaker", *extra: str) -> SpeakProc:
    """A speaker (no L2, no BGP) over TLS with ``role``'s credentials from the environment, started."""
    env = _env(STREAMLB_REDIS_USERNAME=srv.sec.user(role), STREAMLB_REDIS_PASSWORD=srv.sec.passwords[role])
    return SpeakProc(None, node, tmp, "--no-l2", "--no-bgp", "--cluster", CLUSTER, "--heartbeat-ttl-ms", "1500",
                     *extra, url=srv.url(), env=env, name=f"{node}-{role}").start()


# --------------------------------------------------------------------------------------------------------------
# Each role does its job over TLS, and Redis refuses it nothing


def test_each_role_does_its_job_over_tls_and_redis_refuses_nothing(tls_redis: TlsRedis, tmp_path: Path) -> None:
    srv, sec = tls_redis, tls_redis.sec
    admin = sec.admin(srv.port)
    k = keys()
    # producer: `events append`, credentials from the environment (as deployed), TLS with a client certificate
    r = cli("events", "append", str(yaml_file(tmp_path)), "--redis-url", srv.url(), "--cluster", CLUSTER,
            env=_env(STREAMLB_REDIS_USERNAME=sec.user("producer"), STREAMLB_REDIS_PASSWORD=sec.passwords["producer"]))
    assert r.returncode == 0, r.stderr
    n_config = admin.xlen(k.events)
    assert n_config == 6
    # reconciler: `streamlb run` folds, takes the lock, publishes decisions, writes a snapshot; the speaker starts
    # at once (the reconcilers judge a node that never beats after --speaker-ttl)
    run = DaemonProc(tmp_path / "run", srv.url("reconciler"), CLUSTER, "r1", "--snapshot-interval", "0.2",
                     "--speaker-ttl", "30", "--monitor-interval", "0.2").start()
    sp = speak(srv, tmp_path, "node-a")
    try:
        show = lambda: f"speaker:\n{sp.logfile.read_text()[-2000:]}\nrun:\n{run.logfile.read_text()[-2000:]}"
        wait_for(lambda: admin.get(k.leader) == b"r1", what="leader lock", show=show)
        wait_for(lambda: admin.xlen(k.decisions) >= 1, what="decisions published", show=show)
        wait_for(lambda: b"pos" in snapshot_of(admin), what="snapshot written", show=show)
        # speaker: folds the stream and keeps its heartbeat and status keys, nothing else
        wait_for(lambda: admin.exists(k.speaker("node-a")), what="heartbeat key", show=show)
        want = {"192.168.77.10": "node-a"}
        wait_for(lambda: expected_owner(admin_log(srv)) == want, what=f"the oracle's owners {want}", show=show)
        wait_for(lambda: list(sp.status().get("plan", {}).get("l2", {})) == list(want),
                 what=f"speaker plans {want}", show=show)
        assert sp.alive(), show()
    finally:
        sp.stop()
        run.stop()
    # nothing any role did was refused by Redis
    assert acl_log(admin) == []
    # the speaker appended nothing itself: every entry after the configuration is a liveness event of the
    # reconciler (the heartbeat it saw), never a k8s object
    after = [logmod.decode_record(rec) for rec in admin_log(srv).read()][n_config:]
    assert all(isinstance(e, (schema.SpeakerUp, schema.SpeakerDown)) for e in after), after


# --------------------------------------------------------------------------------------------------------------
# Forbidden writes: refused by Redis (NOPERM), reported in one line by streamlb, nothing written


def _seed(srv: TlsRedis) -> tuple[stream.StreamLog, logmod.Snapshot]:
    """Some events and a snapshot written by the reconciler's user (so 'unchanged' means something)."""
    rec = stream.StreamLog.from_url(srv.url("reconciler"), CLUSTER)
    pos = rec.append([schema.SpeakerUp(node="node-a"), schema.SpeakerUp(node="node-b")])
    snap = logmod.Snapshot(pos[-1], 1, b"state-bytes", "h" * 64)
    rec.save_snapshot(snap)
    rec.publish_decisions(pos[-1], "h" * 64, b"\x80")
    return rec, snap


FORBIDDEN = [
    # (role, what, call, command, key attribute)
    ("speaker", "append to the events stream", lambda lg, p: lg.append([schema.SpeakerDown(node="node-b")]),
     "XADD", "events"),
    ("speaker", "write the snapshot", lambda lg, p: lg.save_snapshot(logmod.Snapshot(p, 1, b"forged", "f" * 64)),
     "HSET", "snapshot"),
    ("speaker", "take the leader lock", lambda lg, p: lg.try_lead("forger", 60_000), "SET", "leader"),
    ("speaker", "dead-letter an entry", lambda lg, p: lg.deadletter(p, "forged", b""), "XADD", "deadletter"),
    ("speaker", "trim the stream", lambda lg, p: lg.trim_below(p), "XTRIM", "events"),
    ("producer", "write decisions", lambda lg, p: lg.publish_decisions(p, "f" * 64, b"\x80"), "XADD", "decisions"),
    ("producer", "write the snapshot", lambda lg, p: lg.save_snapshot(logmod.Snapshot(p, 1, b"forged", "f" * 64)),
     "HSET", "snapshot"),
    ("producer", "take the leader lock", lambda lg, p: lg.try_lead("forger", 60_000), "SET", "leader"),
    ("producer", "forge a heartbeat", lambda lg, p: lg.heartbeat("node-z", 60_000), "SET", "speaker:node-z"),
]


@pytest.mark.parametrize("role, what, call, command, key", FORBIDDEN, ids=[f"{f[0]}-{f[1]}" for f in FORBIDDEN])
def test_forbidden_write_is_refused_by_redis_and_named(tls_redis: TlsRedis, role, what, call, command, key) -> None:
    srv = tls_redis
    admin = srv.sec.admin(srv.port)
    rec, snap = _seed(srv)
    k = keys()
    before = {name: admin.dump(getattr(k, name) if name != "speaker:node-z" else k.speaker("node-z"))
              for name in ("events", "snapshot", "decisions", "deadletter", "leader", "speaker:node-z")}
    lg = stream.StreamLog.from_url(srv.url(role), CLUSTER)
    with pytest.raises(logmod.LogForbidden) as ei:
        call(lg, snap.position)
    msg = str(ei.value)
    full_key = k.speaker("node-z") if key == "speaker:node-z" else getattr(k, key)
    assert f"Redis refused {command} on {full_key} to user '{srv.sec.user(role)}' (NOPERM)" in msg, msg
    allowed = acl.roles_allowed(command.lower(), full_key)
    assert role not in allowed and allowed and all(acl.role(r).user in msg for r in allowed), msg
    assert "\n" not in msg
    # Redis is the one that refused, and nothing changed
    log = acl_log(admin)
    assert log and log[-1][0] == srv.sec.user(role), log
    after = {name: admin.dump(getattr(k, name) if name != "speaker:node-z" else k.speaker("node-z"))
             for name in before}
    assert after == before
    lg.close()
    rec.close()


def test_cli_refusals_are_one_line_exit_1_and_append_nothing(tls_redis: TlsRedis, tmp_path: Path) -> None:
    srv = tls_redis
    sec = srv.sec
    admin = sec.admin(srv.port)
    _seed(srv)
    k = keys()
    n = admin.xlen(k.events)
    snap = snapshot_of(admin)
    ndec = admin.xlen(k.decisions)

    def env(role: str) -> dict:
        return _env(STREAMLB_REDIS_USERNAME=sec.user(role), STREAMLB_REDIS_PASSWORD=sec.passwords[role])

    # a speaker's credential cannot append events (a forged Service, a forged speaker.down for another node)
    r = cli("events", "append", str(yaml_file(tmp_path)), "--redis-url", srv.url(), "--cluster", CLUSTER,
            env=env("speaker"))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert f"Redis refused XADD on {k.events} to user 'streamlb-speaker' (NOPERM)" in lines[0]
    assert "producer or reconciler role" in lines[0] and "appended 0 events" in lines[0]
    assert "Traceback" not in r.stderr + r.stdout

    # nor run the Kubernetes producer: `streamlb watch` lists the cluster, then Redis refuses its first append
    from tests.kube.fakeapi import FakeKube

    import yaml

    fake = FakeKube().start()
    try:
        for doc in yaml.safe_load_all(CONFIG):
            fake.put(doc)
        r = cli("watch", "--kubeconfig", fake.kubeconfig(tmp_path / "kubeconfig.json"), "--redis-url", srv.url(),
                "--cluster", CLUSTER, "--duration", "30", env=env("speaker"))
    finally:
        fake.stop()
    # (the seeded snapshot is test bytes, so the watcher also warns that it cannot use it for its ledger)
    lines = [ln for ln in r.stderr.strip().splitlines() if "snapshot not usable" not in ln]
    assert r.returncode == 1 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith(f"streamlb: error: Redis refused XADD on {k.events} to user 'streamlb-speaker' "
                               "(NOPERM)"), lines

    # `streamlb run` with the producer's or the speaker's credential: one error line, exit 1, nothing written
    for role in ("producer", "speaker"):
        log_file = tmp_path / f"run-{role}.log"
        with open(log_file, "wb") as f:
            p = subprocess.run([sys.executable, "-m", "reconciler", "run", "--redis-url", srv.url(), "--cluster",
                                CLUSTER, "--replica", f"as-{role}", "--log-format", "json"], cwd=ROOT, env=env(role),
                               stdout=subprocess.DEVNULL, stderr=f, timeout=60)
        text = log_file.read_text()
        assert p.returncode == 1, text
        errors = [json.loads(ln) for ln in text.splitlines() if '"level": "error"' in ln]
        assert len(errors) == 1 and "Traceback" not in text, text
        assert f"to user '{sec.user(role)}' (NOPERM)" in errors[0]["msg"] and "reconciler role" in errors[0]["msg"]

    # `streamlb speak` with the producer's credential cannot keep a heartbeat
    p = speak(srv, tmp_path, "node-a", "producer")
    try:
        rc = p.proc.wait(60)
    finally:
        p.stop()
    text = p.logfile.read_text()
    errors = [json.loads(ln) for ln in text.splitlines() if '"level": "error"' in ln]
    assert rc == 1 and len(errors) == 1 and "Traceback" not in text, text
    # (whichever the speaker tries first: following the stream with XREAD, or its heartbeat)
    assert "to user 'streamlb-producer' (NOPERM)" in errors[0]["msg"] and "speaker role" in errors[0]["msg"]

    # nor with the reconciler's: it may read everything a speaker reads, but not write a heartbeat
    p = speak(srv, tmp_path, "node-a", "reconciler")
    try:
        rc = p.proc.wait(60)
    finally:
        p.stop()
    text = p.logfile.read_text()
    errors = [json.loads(ln) for ln in text.splitlines() if '"level": "error"' in ln]
    assert rc == 1 and len(errors) == 1 and "Traceback" not in text, text
    assert f"Redis refused SET on {k.speaker('node-a')} to user 'streamlb-reconciler' (NOPERM)" in errors[0]["msg"]

    # nothing was appended, published, snapshotted or locked; every refusal is in the server's ACL log
    assert admin.xlen(k.events) == n and admin.xlen(k.decisions) == ndec and snapshot_of(admin) == snap
    assert admin.get(k.leader) is None and not admin.exists(k.speaker("node-a"))
    assert refused_roles(admin) == {"streamlb-speaker", "streamlb-producer", "streamlb-reconciler"}


def test_a_per_node_speaker_user_writes_only_its_own_nodes_keys(tmp_path: Path, pki: Pki) -> None:
    """With per-node speaker users (``redis-acl render --speaker-node``) a compromised node cannot delete or
    forge another node's heartbeat, which the reconcilers would turn into speaker.down / speaker.up."""
    sec = Secured(tmp_path, pki, speaker_nodes=("node-a", "node-b"))
    srv = TlsRedis(tmp_path / "redis", sec).start()
    try:
        admin = sec.admin(srv.port)
        k = keys()
        url = lambda node: (f"rediss://{acl.node_speaker_user(node)}:{sec.node_passwords[node]}@127.0.0.1:"
                            f"{srv.port}/0?{pki.query()}")
        a, b = (stream.StreamLog.from_url(url(n), CLUSTER) for n in ("node-a", "node-b"))
        a.heartbeat("node-a", 60_000)
        b.heartbeat("node-b", 60_000)
        assert a.read_page(ZERO) == [] and a.load_snapshot() is None  # reads like the shared speaker user
        for call in (lambda: a.heartbeat("node-b", 1), lambda: a.clear_heartbeat("node-b")):
            with pytest.raises(logmod.LogForbidden, match=r"on streamlb:\{sec\}:speaker:node-b to user "
                                                          "'streamlb-speaker-node-a' \\(NOPERM\\)"):
                call()
        with pytest.raises(logmod.LogForbidden, match="XADD"):
            a.append([schema.SpeakerDown(node="node-b")])
        assert admin.pttl(k.speaker("node-b")) > 50_000  # untouched
        user = "streamlb-speaker-node-a"  # (Redis folds repeated refusals of one key into one ACL LOG entry)
        assert set(acl_log(admin)) == {(user, "key", k.speaker("node-b")), (user, "command", "xadd")}
        a.close()
        b.close()
    finally:
        srv.stop()


# --------------------------------------------------------------------------------------------------------------
# TLS: the server's certificate is verified, the client's is required


def test_tls_verifies_the_server_and_presents_the_client_certificate(tls_redis: TlsRedis) -> None:
    srv, pki = tls_redis, tls_redis.sec.pki
    ok = stream.StreamLog.from_url(srv.url("producer"), CLUSTER)
    assert ok.head() == ZERO
    ok.close()
    cases = {
        "an unrelated CA": f"ssl_ca_certs={pki.other_ca}&ssl_certfile={pki.client_cert}&ssl_keyfile={pki.client_key}",
        "no client certificate": f"ssl_ca_certs={pki.ca}",
    }
    for what, query in cases.items():
        lg = stream.StreamLog.from_url(srv.url("producer", query=query), CLUSTER)
        with pytest.raises(logmod.LogUnavailable) as ei:
            lg.head()
        if what == "an unrelated CA":
            assert "certificate verify failed" in str(ei.value), str(ei.value)
        lg.close()
    # plain TCP to the TLS port is no way in either
    plain = stream.StreamLog.from_url(f"redis://{srv.sec.cred('producer')}127.0.0.1:{srv.port}/0", CLUSTER)
    with pytest.raises(logmod.LogUnavailable):
        plain.head()
    plain.close()
    # the CLI: one line, exit 1 (unreachable) / exit 2 (a bad option value)
    r = cli("events", "tail", "--redis-url", srv.url("producer", query=f"ssl_ca_certs={pki.other_ca}"),
            "--cluster", CLUSTER)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "certificate verify failed" in r.stderr
    r = cli("events", "tail", "--redis-url", srv.url("producer", query="ssl_cert_reqs=maybe"), "--cluster", CLUSTER)
    assert r.returncode == 2 and "ssl_cert_reqs must be" in r.stderr and "Traceback" not in r.stderr
    assert srv.sec.passwords["producer"] not in r.stderr  # the URL is redacted in errors


# --------------------------------------------------------------------------------------------------------------
# Redis Sentinel and Redis Cluster over TLS, with the same users


def _roles_through(url_of, tmp_path: Path, admin_of) -> None:
    """The producer appends, a `streamlb run` daemon folds and publishes, the speaker beats; the speaker's and the
    producer's forbidden writes are refused; Redis refused nothing else."""
    from tests.integration.test_redis_scaleout import offline_hash

    prod = stream.StreamLog.from_url(url_of("producer"), CLUSTER)
    pos = prod.append([schema.SpeakerUp(node=f"n{i}") for i in range(5)])
    d = DaemonProc(tmp_path / "d", url_of("reconciler"), CLUSTER, "r1", "--speaker-ttl", "3600",
                   "--snapshot-interval", "0.2").start()
    try:
        cp = d.wait_idle_at(str(pos[-1]))
        admin = admin_of()
        assert cp["hash"] == offline_hash(stream.StreamLog(admin, CLUSTER))
        wait_for(lambda: admin.hget(keys().snapshot, "pos") == str(pos[-1]).encode(), what="snapshot")
    finally:
        d.stop()
    sp = stream.StreamLog.from_url(url_of("speaker"), CLUSTER)
    sp.heartbeat("n1", 5000)
    assert len(sp.read_page(ZERO)) == 5 and sp.load_snapshot() is not None
    assert not refused_roles(admin_of())  # everything so far was allowed
    with pytest.raises(logmod.LogForbidden, match=r"XADD on streamlb:\{sec\}:events to user 'streamlb-speaker'"):
        sp.append([schema.SpeakerDown(node="n2")])
    with pytest.raises(logmod.LogForbidden, match=r"HSET on streamlb:\{sec\}:snapshot to user 'streamlb-producer'"):
        prod.save_snapshot(logmod.Snapshot(pos[0], 1, b"x", "y"))
    assert prod.read_page(ZERO)[-1].position == pos[-1]  # nothing appended
    sp.close()
    prod.close()


def test_roles_through_redis_sentinel_over_tls(tmp_path: Path, pki: Pki) -> None:
    sec = Secured(tmp_path, pki, extra_users=(
        # the sentinels' and the replica's own users on the data nodes (Redis's documented minimal rules)
        "user sentinel-user on >sentinel-pw allchannels +multi +slaveof +ping +exec +subscribe +config|rewrite "
        "+role +publish +info +client|setname +client|kill +script|kill",
        "user replica-user on >replica-pw +psync +replconf +ping",
    ))
    master = TlsRedis(tmp_path / "master", sec).start()
    replica = TlsRedis(tmp_path / "replica", sec, extra=["--replicaof", "127.0.0.1", str(master.port),
                                                         "--masteruser", "replica-user", "--masterauth",
                                                         "replica-pw"]).start()
    sport = free_port()
    sdir = tmp_path / "sentinel"
    sdir.mkdir()
    conf = sdir / "sentinel.conf"
    conf.write_text(
        f"port 0\ntls-port {sport}\nbind 127.0.0.1\ndir {sdir}\ntls-cert-file {pki.server_cert}\n"
        f"tls-key-file {pki.server_key}\ntls-ca-cert-file {pki.ca}\ntls-auth-clients yes\ntls-replication yes\n"
        f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\nsentinel auth-user mymaster sentinel-user\n"
        "sentinel auth-pass mymaster sentinel-pw\nsentinel down-after-milliseconds mymaster 5000\n")
    sentinel = subprocess.Popen(["redis-server", str(conf), "--sentinel", "--logfile", str(sdir / "redis.log")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sadmin = redis.Redis(host="127.0.0.1", port=sport, socket_timeout=5, **sec.tls_kwargs())
        wait_for(lambda: _quiet(lambda: sadmin.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")),
                 what="sentinel over TLS knows the master")

        def url_of(role: str) -> str:
            return f"rediss+sentinel://{sec.cred(role)}127.0.0.1:{sport}/mymaster/0?{pki.query()}"

        _roles_through(url_of, tmp_path, lambda: sec.admin(master.port))
        # the replica got the entries over TLS replication
        wait_for(lambda: sec.admin(replica.port).xlen(keys().events) == 5, what="replicated over TLS")
    finally:
        stop(sentinel)
        replica.stop()
        master.stop()


def _quiet(f):
    try:
        return f()
    except redis.exceptions.RedisError:
        return None


def test_roles_through_redis_cluster_over_tls(tmp_path: Path, pki: Pki) -> None:
    sec = Secured(tmp_path, pki)
    nodes = [TlsRedis(tmp_path / f"node{i}", sec, port=free_cluster_port(),
                      extra=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                             "--cluster-node-timeout", "2000", "--tls-cluster", "yes"]) for i in range(3)]
    try:
        for n in nodes:
            n.start()
        tls = ["--tls", "--cacert", str(pki.ca), "--cert", str(pki.client_cert), "--key", str(pki.client_key),
               "--user", ADMIN, "--pass", sec.admin_password, "--no-auth-warning"]
        subprocess.run([REDIS_CLI, *tls, "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in nodes],
                        "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=60)
        wait_for(lambda: all(b"cluster_state:ok" in sec.admin(n.port).execute_command("CLUSTER", "INFO")
                             for n in nodes), what="cluster ok")
        seeds = ",".join(f"127.0.0.1:{n.port}" for n in nodes[:2])

        def url_of(role: str) -> str:
            return f"rediss+cluster://{sec.cred(role)}{seeds}?{pki.query()}"

        def admin_of() -> redis.Redis:
            slot_owner = redis.cluster.RedisCluster(
                host="127.0.0.1", port=nodes[0].port, username=ADMIN, password=sec.admin_password,
                **sec.tls_kwargs()).get_node_from_key(keys().events)
            return sec.admin(slot_owner.port)

        _roles_through(url_of, tmp_path, admin_of)
    finally:
        for n in nodes:
            n.stop()


# --------------------------------------------------------------------------------------------------------------
# The whole loop with role credentials: watch -> run -> speak in network namespaces, speakers over TLS

MACS = {"node-a": "02:00:5e:31:00:0a", "node-b": "02:00:5e:31:00:0b"}
ADDRS = {"node-a": "10.89.7.1", "node-b": "10.89.7.2"}
REDIS_ADDR = "10.89.7.254"


class HubRedis(TlsRedis):
    """The TLS redis-server inside the hub namespace, on the segment the speakers' nodes share (TLS only), plus a
    Unix socket for the components in the root namespace (the watcher and the reconciler: same users, no TLS)."""

    def __init__(self, workdir: Path, sec: Secured, hub) -> None:
        super().__init__(workdir, sec)
        self.hub = hub
        self.sock = workdir / "redis.sock"

    def argv(self) -> list[str]:
        return ["ip", "netns", "exec", self.hub.name, *super().argv(), "--bind", REDIS_ADDR,
                "--unixsocket", str(self.sock), "--unixsocketperm", "777"]

    def admin_client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.sock), username=ADMIN, password=self.sec.admin_password,
                           socket_timeout=10)

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.dir / 'redis.log').read_text()[-2000:]}")
            if _quiet(lambda: self.admin_client().ping()):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server in the hub namespace not ready")


def test_watch_run_speak_in_namespaces_with_role_credentials(tmp_path: Path, pki: Pki) -> None:
    from tests.integration.speaker_env import Topology, have_root_netns, neigh, poke
    from tests.kube.fakeapi import FakeKube

    assert have_root_netns(), "needs root and iproute2 for network namespaces"
    sec = Secured(tmp_path, pki)
    topo = Topology()
    fake = FakeKube(bookmark_interval=0.3).start()
    procs: list[subprocess.Popen] = []
    srv = None
    try:
        hub = topo.ns("hub")
        topo.bridge(hub)
        hub.run("ip", "addr", "add", f"{REDIS_ADDR}/24", "dev", "br0")
        n = {}
        for role, node in (("a", "node-a"), ("b", "node-b")):
            n[role] = topo.attach(hub, role, f"{ADDRS[node]}/24", mac=MACS[node])
        n["c"] = topo.attach(hub, "c", "10.89.7.100/24")
        srv = HubRedis(tmp_path / "redis", sec, hub).start()
        admin = srv.admin_client()
        unix = f"unix://{srv.sock}"

        import yaml

        # the pool inside the segment's subnet, so the client asks for the IP on the wire
        for doc in yaml.safe_load_all(CONFIG.replace("192.168.77.10-192.168.77.19", "10.89.7.50-10.89.7.59")):
            fake.put(doc)

        def env(role: str) -> dict:
            return _env(STREAMLB_REDIS_USERNAME=sec.user(role), STREAMLB_REDIS_PASSWORD=sec.passwords[role])

        def start(name: str, argv: list[str], role: str) -> subprocess.Popen:
            with open(tmp_path / f"{name}.log", "wb") as f:
                p = subprocess.Popen(argv, cwd=ROOT, env=env(role), stdout=subprocess.DEVNULL, stderr=f)
            procs.append(p)
            return p

        py = [sys.executable, "-m", "reconciler"]
        watch = start("watch", [*py, "watch", "--kubeconfig", fake.kubeconfig(tmp_path / "kubeconfig.json"),
                                "--redis-url", unix, "--cluster", CLUSTER, "--state", str(tmp_path / "watch.state")],
                      "producer")
        run = start("run", [*py, "run", "--redis-url", unix, "--cluster", CLUSTER, "--replica", "r1",
                            "--log-format", "json", "--snapshot-interval", "0.5", "--monitor-interval", "0.2",
                            "--speaker-ttl", "2"], "reconciler")
        tls_url = f"rediss://{REDIS_ADDR}:{srv.port}/0?{pki.query()}"
        speakers = {}
        for role, node in (("a", "node-a"), ("b", "node-b")):
            speakers[node] = SpeakProc(n[role], node, tmp_path, "--cluster", CLUSTER, "--no-bgp",
                                       "--heartbeat-ttl-ms", "1500", url=tls_url, env=env("speaker")).start()
            procs.append(speakers[node].proc)
        k = keys()
        logs = lambda: "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(tmp_path.glob("*.log")))
        wait_for(lambda: admin.xlen(k.events) >= 6, what="the watcher appended the cluster", show=logs)
        wait_for(lambda: admin.get(k.leader) == b"r1" and admin.xlen(k.decisions) >= 1,
                 what="the reconciler leads and publishes", show=logs)
        wait_for(lambda: admin.exists(k.speaker("node-a")) and admin.exists(k.speaker("node-b")),
                 what="both speakers beat over TLS", show=logs)
        owners = expected_owner(stream.StreamLog(admin, CLUSTER))
        ((vip, owner),) = owners.items()
        poke(n["c"], vip)
        got = wait_for(lambda: (poke(n["c"], vip), neigh(n["c"], vip))[1], 60, what="the client resolves the VIP",
                       show=logs)
        assert got == MACS[owner]
        for p in (watch, run, *(sp.proc for sp in speakers.values())):
            assert p.poll() is None, logs()
        # the speakers reach Redis only over TLS: the server has no plain TCP port
        assert admin.config_get("port") == {"port": "0"}
        assert int(admin.config_get("tls-port")["tls-port"]) == srv.port
        # and nothing any component did was refused
        assert acl_log(admin) == [], acl_log(admin)
        # the only entries not from the watcher are the reconciler's liveness events
        kinds = {type(logmod.decode_record(r)).__name__ for r in stream.StreamLog(admin, CLUSTER).read()}
        assert kinds <= {"K8sUpsert", "K8sDelete", "SpeakerUp", "SpeakerDown"}
    finally:
        for p in reversed(procs):
            stop(p)
        fake.stop()
        if srv is not None:
            srv.stop()
        topo.close()


def test_doctor_finds_no_excess_rights_in_the_rendered_users(tls_redis: TlsRedis) -> None:
    """`streamlb doctor` probes each role user with ACL DRYRUN for writes its role never needs: the users
    `redis-acl render` writes pass (over TLS, asked by the test's admin user)."""
    srv, sec = tls_redis, tls_redis.sec
    url = f"rediss://{ADMIN}:{sec.admin_password}@127.0.0.1:{srv.port}/0?{sec.pki.query()}"
    r = cli("doctor", "--redis-url", url, "--cluster", CLUSTER, "-o", "json")
    assert r.stdout, r.stderr
    rights = next(c for c in json.loads(r.stdout)["checks"] if c["code"] == "EXCESS_RIGHTS")
    assert rights["status"] == "ok" and rights["findings"] == [], rights
