"""State <-> bytes (msgpack), with a format version. Pure: the runtime decides where snapshots live.

A snapshot holds the inputs (every object, speaker liveness, the objects of the configuration in force), the
decisions that depend on history (assignments, per-Service decisions and events, pending Services) and the plan's
L2 owners (version 2). Indexes are rebuilt on load. Law (tested): ``load(dump(fold(a))) + fold(b) == fold(a + b)``.

Starting from a snapshot (a speaker, a new leader): ``state = load(data)`` then ``planning.node_plan(state, node)``
(or a ``planning.NodeView``) gives the first node plan after one O(Services + nodes) pass: the announcement plan is
rebuilt from the recorded owners instead of re-running every election (Services × nodes SHA-256 rankings); the
same pass happens before the first event folded after the load. Version 2 also changed the state hash encoding
(:mod:`reconciler.decisions`), so a version-1 snapshot is refused.
"""

from __future__ import annotations

import msgspec

from events import schema
from reconciler import net, planning
from reconciler.state import ServiceDecision, State

SNAPSHOT_VERSION = 2


class _Service(msgspec.Struct, frozen=True, array_like=True):
    key: str
    ingress: tuple[str, ...]
    pool: str | None
    reason: str | None
    message: str
    events: tuple[tuple[str, str, str], ...]


class _Assigned(msgspec.Struct, frozen=True, array_like=True):
    key: str
    pool: str
    ips: tuple[str, ...]


class _Body(msgspec.Struct, frozen=True):
    version: int
    lb_class: str | None
    objects: tuple[schema.K8sObject, ...]
    speakers_down: tuple[str, ...]
    config_loaded: bool
    config_objects: tuple[schema.K8sObject, ...]
    config_valid: bool
    config_errors: tuple[str, ...]
    assigned: tuple[_Assigned, ...]
    services: tuple[_Service, ...]
    pending: tuple[str, ...]
    l2_owners: tuple[tuple[str, str], ...] = ()  # (Service, elected L2 owner), Service order


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Body)


class SnapshotError(ValueError):
    pass


def dump(state: State, plan: bool = True) -> bytes:
    """The snapshot of ``state``. ``plan=False`` leaves the plan's owners out (the loader then re-runs every
    election, as a version-1 snapshot made it do; benchmarks use it as the baseline)."""
    objects = tuple(
        state.objects[kind][k] for kind in schema.OBJECT_KINDS for k in sorted(state.objects[kind])
    )
    body = _Body(
        version=SNAPSHOT_VERSION,
        lb_class=state.lb_class,
        objects=objects,
        speakers_down=tuple(sorted(state.speakers_down)),
        config_loaded=state.config is not None,
        config_objects=state.config_objects,
        config_valid=state.config_valid,
        config_errors=tuple(state.config_errors),
        assigned=tuple(
            _Assigned(k, pool, tuple(net.to_text(f, v) for f, v in addrs))
            for k, (pool, addrs) in sorted(state.assigned.items())
        ),
        services=tuple(
            _Service(k, tuple(d.ingress), d.pool, d.reason, d.message, tuple(d.events))
            for k, d in sorted(state.services.items())
        ),
        pending=tuple(sorted(state.pending)),
        l2_owners=tuple(planning.owners(state).items()) if plan else (),
    )
    return _encoder.encode(body)


def load(data: bytes) -> State:
    """The state a snapshot holds; its plan is seeded with the recorded L2 owners (built on first use)."""
    from reconciler import fold  # local: fold imports state; avoids a cycle at import time

    try:
        body = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise SnapshotError(f"invalid snapshot: {exc}") from None
    if body.version != SNAPSHOT_VERSION:
        raise SnapshotError(f"unsupported snapshot version {body.version}")
    st = State(lb_class=body.lb_class)
    tables = st.objects
    kind_of = fold._kind
    slices_t = schema.EndpointSlice
    by_service = st.slices_by_service
    for obj in body.objects:
        tables[kind_of(obj)][(obj.namespace, obj.name)] = obj
        if type(obj) is slices_t:
            names = by_service.get((obj.namespace, obj.service_name))
            if names is None:
                by_service[(obj.namespace, obj.service_name)] = {obj.name}
            else:
                names.add(obj.name)
    st.speakers_down = set(body.speakers_down)
    if body.config_loaded:
        src: dict = {k: {} for k in schema.OBJECT_KINDS}
        for obj in body.config_objects:
            src[fold._kind(obj)][(obj.namespace, obj.name)] = obj
        prepared = fold.prepare_config(src)  # it was valid when it came into force: node rules need no re-check
        cfg, errors = prepared.config, prepared.errors
        if cfg is None:
            raise SnapshotError(f"snapshot's configuration does not validate: {errors[:1]}")
        st.config = cfg
        st.config_objects = body.config_objects
    st.config_valid = body.config_valid
    st.config_errors = list(body.config_errors)
    parse = net.parse_ip
    assigned, ip_users = st.assigned, st.ip_users
    for a in body.assigned:  # (a snapshot holds 100,000s: no per-entry generator or sort of a single user)
        addrs = tuple(map(parse, a.ips))
        assigned[a.key] = (a.pool, addrs)
        for addr in addrs:
            users = ip_users.get(addr)
            if users is None:
                ip_users[addr] = [a.key]
            else:
                users.append(a.key)
                users.sort()
    services = st.services
    for s in body.services:  # events decode as tuples already
        services[s.key] = ServiceDecision(list(s.ingress), s.pool, s.reason, s.message, list(s.events))
    st.pending = set(body.pending)
    st.plan = planning.Seed(dict(body.l2_owners))
    return st
