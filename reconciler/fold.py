"""The fold: ``apply(state, event) -> state`` and ``fold(events, state)``.

Theory of operation
-------------------
Every replica applies the same events in the same order and so reaches the same state. ``apply`` stores the
object an event carries, then re-decides only what that event can affect:

* a Service event converges that Service (and, if it freed an address, the Services waiting for one);
* a configuration event (pools, advertisements, peers, communities, BFD profiles) rebuilds the configuration;
  when it is valid, the Services of changed pools re-converge, holders first; when it is invalid the previous
  configuration stays in force and ``config_valid`` is false;
* a Namespace event changes the configuration only when it moves that namespace in or out of a pool's
  ``namespaceSelectors`` (checked for that namespace alone); then it is handled as a configuration event;
* a Node event re-checks only that node against the validation rules that compare node sets (LOCAL_PREF
  consistency, peers meeting on a node: :class:`reconciler.config.NodeChecks`), in O(rules) whatever the number
  of nodes — same verdicts and error texts as the whole-configuration check; the configuration in force is not
  rebuilt (nothing in it depends on Nodes), unless the event makes an invalid configuration valid again;
* Nodes, EndpointSlices and speaker liveness feed announcement planning, which re-plans what they touch.

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

import dataclasses
from collections.abc import Iterable
from typing import assert_never

from events import codec, schema
from reconciler import allocate, planning, selectors
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


def _values(objs: dict, kind: str) -> list:
    table = objs[kind]
    return [table[k] for k in sorted(table)]


def _namespaces(objs: dict) -> dict[str, dict[str, str]]:
    return {name: dict(o.labels) for (_, name), o in sorted(objs["Namespace"].items())}


def prepare_config(objs: dict) -> configmod.Prepared:
    """The node-independent part of validating the stored configuration objects (:func:`reconciler.config.prepare`)."""
    return configmod.prepare(
        _values(objs, "IPAddressPool"),
        _values(objs, "L2Advertisement"),
        _values(objs, "BGPAdvertisement"),
        _values(objs, "BGPPeer"),
        _values(objs, "Community"),
        _values(objs, "BFDProfile"),
        _namespaces(objs),
    )


def build_config(objs: dict) -> tuple[configmod.Config | None, list[str]]:
    """Build the configuration from the stored objects from scratch (see :func:`reconciler.config.build`)."""
    nodes = {name: dict(o.labels) for (_, name), o in sorted(objs["Node"].items())}
    return configmod.build(
        _values(objs, "IPAddressPool"),
        _values(objs, "L2Advertisement"),
        _values(objs, "BGPAdvertisement"),
        _values(objs, "BGPPeer"),
        _values(objs, "Community"),
        _values(objs, "BFDProfile"),
        _namespaces(objs),
        nodes,
    )


class ConfigIndex:
    """The fold's validation index: the node-independent verdict of the current configuration objects and the
    node-dependent rules kept per Node (rebuilt on configuration events, updated on Node events)."""

    __slots__ = ("prepared", "checks")

    def __init__(self, objs: dict) -> None:
        self.prepared = prepare_config(objs)
        self.checks = configmod.NodeChecks(self.prepared.rules)
        if self.prepared.rules:
            for (_, name), node in sorted(objs["Node"].items()):
                self.checks.set(name, dict(node.labels))

    def errors(self) -> list[str]:
        return sorted(self.prepared.errors + self.checks.errors())


def _config_index(state: State) -> ConfigIndex:
    idx = state.config_index
    if not isinstance(idx, ConfigIndex):  # after a snapshot load: built on first need
        idx = state.config_index = ConfigIndex(state.objects)
        cfg = idx.prepared.config
        if state.config_valid and cfg is not None and cfg is not state.config and cfg == state.config:
            idx.prepared = dataclasses.replace(idx.prepared, config=state.config)  # the one in force, same value
    return idx


def _rebuild_config(state: State) -> None:
    idx = state.config_index = ConfigIndex(state.objects)
    _judge(state, idx)


def _judge(state: State, idx: ConfigIndex) -> None:
    errors = idx.errors()
    if errors:
        state.config_valid = False
        state.config_errors = errors
        return
    cfg = idx.prepared.config
    assert cfg is not None
    objs = state.objects
    state.config_valid = True
    state.config_errors = []
    old = state.config
    state.config = cfg
    state.config_objects = tuple(
        objs[kind][k] for kind in sorted(_CONFIG_KINDS) for k in sorted(objs[kind])
    )
    allocate.on_config(state, old)


def _node_labels(state: State, name: str, labels: dict[str, str] | None) -> None:
    """A Node's labels changed (None: deleted): re-check the node-set rules for that node only."""
    idx = _config_index(state)
    if not idx.prepared.rules:
        return
    idx.checks.set(name, labels)
    if state.config_valid and idx.prepared.config is not None and state.config is idx.prepared.config:
        errors = idx.errors()
        if errors:  # valid -> invalid: the configuration in force stays
            state.config_valid = False
            state.config_errors = errors
        return
    if idx.prepared.config is None:  # errors that no Node can cure: only their list may change
        state.config_valid = False
        state.config_errors = idx.errors()
        return
    _judge(state, idx)  # was invalid (or not yet in force): may come into force now


def _namespace_moves_pools(state: State, old: schema.Namespace | None, new: schema.Namespace | None) -> bool:
    """Does this Namespace event change which namespaces some pool's ``namespaceSelectors`` select?"""
    old_labels = dict(old.labels) if old is not None else None
    new_labels = dict(new.labels) if new is not None else None
    for pool in state.objects["IPAddressPool"].values():
        sa = pool.service_allocation
        if sa is None or not sa.namespace_selectors:
            continue
        before = old_labels is not None and any(selectors.matches(s, old_labels) for s in sa.namespace_selectors)
        after = new_labels is not None and any(selectors.matches(s, new_labels) for s in sa.namespace_selectors)
        if before != after:
            return True
    return False


def _namespace_changed(state: State, old: schema.Namespace | None, new: schema.Namespace | None) -> None:
    if _namespace_moves_pools(state, old, new):
        _rebuild_config(state)
        return
    # no pool's namespaces change: every verdict stays; the objects of a configuration in force are refreshed so a
    # snapshot holds the current Namespace objects
    idx = _config_index(state)
    if state.config_valid and state.config is idx.prepared.config:
        objs = state.objects
        state.config_objects = tuple(objs[kind][k] for kind in sorted(_CONFIG_KINDS) for k in sorted(objs[kind]))
    elif state.config_valid:
        _rebuild_config(state)


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
    t = type(obj)
    kind = _KIND_OF.get(t) or _kind(obj)
    table = state.objects[kind]
    key = (obj.namespace, obj.name)
    old = table.get(key)
    if t is schema.EndpointSlice:  # the commonest event: stored, and the slice index moved only when it must
        if old is not None:
            if old == obj:
                return
            if old.service_name == obj.service_name:  # type: ignore[attr-defined]
                table[key] = obj
                return
            _index_slice(state, old, add=False)  # type: ignore[arg-type]
        table[key] = obj
        _index_slice(state, obj, add=True)  # type: ignore[arg-type]
        return
    if old is not None and old == obj:
        return
    table[key] = obj
    if t is schema.Service:
        allocate.on_service(state, obj, old)  # type: ignore[arg-type]
    elif t is schema.Node:
        if old is None or old.labels != obj.labels:
            _node_labels(state, obj.name, dict(obj.labels))
    elif t is schema.Namespace:
        if old is None or old.labels != obj.labels:
            _namespace_changed(state, old, obj)  # type: ignore[arg-type]
    elif kind in _CONFIG_KINDS:
        _rebuild_config(state)


upsert = _upsert  # fold.apply of a K8sUpsert while the state has no planning (replay's inlined loop)


def _delete(state: State, ref: schema.ObjectRef) -> None:
    table = state.objects[ref.kind]
    key = (ref.namespace, ref.name)
    old = table.pop(key, None)
    if old is None:
        return
    t = type(old)
    if t is schema.Service:
        allocate.on_service_deleted(state, f"{ref.namespace}/{ref.name}")
    elif t is schema.EndpointSlice:
        _index_slice(state, old, add=False)
    elif ref.kind == "Node":
        _node_labels(state, ref.name, None)
    elif ref.kind == "Namespace":
        _namespace_changed(state, old, None)  # type: ignore[arg-type]
    elif ref.kind in _CONFIG_KINDS:
        _rebuild_config(state)


delete = _delete  # fold.apply of a K8sDelete while the state has no planning


def apply(state: State, event: schema.Event) -> State:
    """Apply one event (in place) and return the state."""
    plan = state.plan
    token = planning.before(state, event) if plan is not None else None  # planning is built lazily: None = not yet
    t = type(event)
    if t is schema.K8sUpsert:
        _upsert(state, event.obj)  # type: ignore[union-attr]
    elif t is schema.K8sDelete:
        _delete(state, event.ref)  # type: ignore[union-attr]
    elif t is schema.SpeakerUp:
        state.speakers_down.discard(event.node)  # type: ignore[union-attr]
    elif t is schema.SpeakerDown:
        state.speakers_down.add(event.node)  # type: ignore[union-attr]
    else:
        assert_never(event)  # type: ignore[arg-type]
    if plan is not None:
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
