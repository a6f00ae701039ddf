"""The fold: ``apply(state, event) -> state`` and ``fold(events, state)``.

Theory of operation
-------------------
Every replica applies the same events in the same order and so reaches the same state. ``apply`` stores the
object an event carries, then re-decides only what that event can affect:

* a Service event converges that Service (and, if it freed an address, the Services waiting for one);
* a configuration event (pools, advertisements, peers, communities, BFD profiles, Namespaces — namespace labels
  feed ``namespaceSelectors``) rebuilds the configuration; when it is valid, every Service re-converges, holders
  first; when it is invalid the previous configuration stays in force and ``config_valid`` is false;
* Nodes, EndpointSlices and speaker liveness feed announcement planning, which reads them when asked.

Rules:

* Rule 1: nothing in this package reads a clock, randomness, the environment or files, or calls ``hash()``.
* Rule 2: no decision depends on dict/set iteration order (see :mod:`reconciler.state`).
* Rule 3: unknown event types are an error (``assert_never``), never silently skipped.
* Rule 4: events a producer may write but in an unexpected form pass :func:`screen` first (the replicas call it
  before ``apply``): a MetalLB object outside the MetalLB namespaces is ignored; a liveness event for a node no
  Node object names, a liveness event that changes nothing and a delete of an unknown object are applied (they
  change no decision) and counted. Malformed events never get here: :func:`events.codec.validate` refuses them
  and the replicas dead-letter them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import assert_never

from events import codec, schema
from reconciler import allocate, planning
from reconciler import config as configmod
from reconciler.state import State

_CONFIG_KINDS = frozenset(
    {"IPAddressPool", "L2Advertisement", "BGPAdvertisement", "BGPPeer", "Community", "BFDProfile", "Namespace"}
)


_KIND_OF: dict[type, str] = {}


def _kind(obj: schema.K8sObject) -> str:
    t = type(obj)
    kind = _KIND_OF.get(t)
    if kind is None:  # __struct_config__ builds a new object per access: look each type up once
        kind = _KIND_OF[t] = t.__struct_config__.tag  # type: ignore[assignment]
    return kind  # type: ignore[return-value]


def build_config(objs: dict) -> tuple[configmod.Config | None, list[str]]:
    """Build the configuration from the stored objects (see :func:`reconciler.config.build`)."""

    def values(kind: str) -> list:
        return [objs[kind][k] for k in sorted(objs[kind])]

    namespaces = {name: dict(o.labels) for (_, name), o in sorted(objs["Namespace"].items())}
    nodes = None
    if _node_sensitive(objs):
        nodes = {name: dict(o.labels) for (_, name), o in sorted(objs["Node"].items())}
    return configmod.build(
        values("IPAddressPool"),
        values("L2Advertisement"),
        values("BGPAdvertisement"),
        values("BGPPeer"),
        values("Community"),
        values("BFDProfile"),
        namespaces,
        nodes,
    )


def _node_sensitive(objs: dict) -> bool:
    """Does validation compare node sets (LOCAL_PREF consistency, peers meeting on a node)? Then Nodes count."""
    return len(objs["BGPPeer"]) > 1 or any(a.local_pref for a in objs["BGPAdvertisement"].values())


def _rebuild_config(state: State) -> None:
    objs = state.objects
    cfg, errors = build_config(objs)
    if cfg is None:
        state.config_valid = False
        state.config_errors = errors
        return
    state.config_valid = True
    state.config_errors = []
    old = state.config
    state.config = cfg
    state.config_objects = tuple(
        objs[kind][k] for kind in sorted(_CONFIG_KINDS) for k in sorted(objs[kind])
    )
    allocate.on_config(state, old)


def _index_slice(state: State, obj: schema.EndpointSlice, add: bool) -> None:
    key = (obj.namespace, obj.service_name)
    names = state.slices_by_service.setdefault(key, set())
    if add:
        names.add(obj.name)
    else:
        names.discard(obj.name)
        if not names:
            del state.slices_by_service[key]


def _upsert(state: State, obj: schema.K8sObject) -> None:
    kind = _kind(obj)
    table = state.objects[kind]
    key = (obj.namespace, obj.name)
    old = table.get(key)
    if old == obj:
        return
    if isinstance(old, schema.EndpointSlice):
        _index_slice(state, old, add=False)
    table[key] = obj
    if isinstance(obj, schema.Service):
        allocate.on_service(state, obj, old)  # type: ignore[arg-type]
    elif isinstance(obj, schema.EndpointSlice):
        _index_slice(state, obj, add=True)
    elif kind == "Node" and (old is None or old.labels != obj.labels) and _node_sensitive(state.objects):
        _rebuild_config(state)
    elif kind in _CONFIG_KINDS:
        if kind == "Namespace" and old is not None and old.labels == obj.labels:
            return
        _rebuild_config(state)


def _delete(state: State, ref: schema.ObjectRef) -> None:
    table = state.objects[ref.kind]
    key = (ref.namespace, ref.name)
    old = table.pop(key, None)
    if old is None:
        return
    if isinstance(old, schema.Service):
        allocate.on_service_deleted(state, f"{ref.namespace}/{ref.name}")
    elif isinstance(old, schema.EndpointSlice):
        _index_slice(state, old, add=False)
    elif ref.kind == "Node" and _node_sensitive(state.objects):
        _rebuild_config(state)
    elif ref.kind in _CONFIG_KINDS:
        _rebuild_config(state)


def apply(state: State, event: schema.Event) -> State:
    """Apply one event (in place) and return the state."""
    token = planning.before(state, event)
    match event:
        case schema.K8sUpsert(obj=obj):
            _upsert(state, obj)
        case schema.K8sDelete(ref=ref):
            _delete(state, ref)
        case schema.SpeakerUp(node=node):
            state.speakers_down.discard(node)
        case schema.SpeakerDown(node=node):
            state.speakers_down.add(node)
        case _:
            assert_never(event)
    planning.after(state, event, token)
    return state


# screen() reasons, stable names (metrics labels, README "Defensive fold")
FOREIGN_NAMESPACE = "foreignNamespace"  # ignored: not applied
UNKNOWN_NODE = "unknownNode"  # applied: recorded for when the Node appears, no decision changes now
UNCHANGED_LIVENESS = "unchangedLiveness"  # applied: nothing changes (several replicas append the same change)
UNKNOWN_OBJECT = "unknownObject"  # applied: a delete of an object never seen changes nothing


def screen(state: State, event: schema.Event, metallb_namespaces: tuple[str, ...]) -> tuple[bool, str | None]:
    """Rule 4: ``(apply it?, reason to count or None)`` for a well-formed event, before :func:`apply` sees it.

    Pure and cheap (one or two dict lookups); reads the state, never changes it.
    """
    match event:
        case schema.SpeakerUp(node=node) | schema.SpeakerDown(node=node):
            if ("", node) not in state.objects["Node"]:
                return True, UNKNOWN_NODE
            if (node in state.speakers_down) == isinstance(event, schema.SpeakerDown):
                return True, UNCHANGED_LIVENESS
            return True, None
        case schema.K8sDelete(ref=ref):
            if codec.outside_namespaces(event, metallb_namespaces) is not None:
                return False, FOREIGN_NAMESPACE
            if (ref.namespace, ref.name) not in state.objects[ref.kind]:
                return True, UNKNOWN_OBJECT
            return True, None
        case schema.K8sUpsert():
            if codec.outside_namespaces(event, metallb_namespaces) is not None:
                return False, FOREIGN_NAMESPACE
            return True, None
    return True, None


def fold(events: Iterable[schema.Event], state: State | None = None) -> State:
    st = state if state is not None else State()
    for e in events:
        apply(st, e)
    return st
