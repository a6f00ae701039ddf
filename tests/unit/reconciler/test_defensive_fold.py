"""Producer-only events in an unexpected form (issue 16 item 3): stated rules, never a crash, never a silent change.

* Malformed (dead-lettered by every replica, refused by the producer API and ``events append``): a Node/Namespace
  with a namespace, a delete of an unknown kind, a liveness event whose node is not a Kubernetes node name.
* Ignored and counted (``foreignNamespace``): a MetalLB object outside the MetalLB namespaces, as MetalLB does; the
  replay of the same log ignores it too, so replay and daemons agree.
* Applied and counted, no decision changes: ``unknownNode`` (liveness for a node no Node object names),
  ``unchangedLiveness`` (a down for a node already down), ``unknownObject`` (a delete of an object never seen).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import data
from events import codec, inputs, producer, schema
from events.memory import MemoryLog
from reconciler import decisions, fold, state as statemod
from reconciler.runtime import replay as replaymod
from reconciler.runtime.daemons import replica as daemonmod
from reconciler.runtime.local import LocalCluster

NS = "metallb-system"
BASE = data.make_event_log(300, n_services=40, n_nodes=4, n_pools=2, seed=11)
NODES = sorted({e.obj.name for e in BASE if isinstance(e, schema.K8sUpsert) and isinstance(e.obj, schema.Node)})


def pool(ns: str, name: str = "evil", addresses: tuple[str, ...] = ("10.0.0.0/8",)) -> schema.K8sUpsert:
    return schema.K8sUpsert(obj=schema.IPAddressPool(namespace=ns, name=name, addresses=addresses))


# -- malformed: refused before the fold ------------------------------------------------------------------------

@pytest.mark.parametrize("event, needle", [
    (schema.K8sUpsert(obj=schema.Node(namespace="default", name="n1")), "cluster-scoped"),
    (schema.K8sUpsert(obj=schema.Namespace(namespace="x", name="web")), "cluster-scoped"),
    (schema.K8sDelete(ref=schema.ObjectRef(kind="ConfigMap", namespace="x", name="y")), "unknown kind"),
    (schema.K8sDelete(ref=schema.ObjectRef(kind="Node", namespace="x", name="n1")), "cluster-scoped"),
    (schema.SpeakerDown(node="Node_A"), "not a Kubernetes node name"),
    (schema.SpeakerUp(node="a" * 254), "not a Kubernetes node name"),
    (schema.SpeakerDown(node="node a"), "not a Kubernetes node name"),
])
def test_malformed_events_are_refused_by_validation(event, needle: str) -> None:
    with pytest.raises(codec.DecodeError, match=needle):
        codec.validate(event)
    with pytest.raises(codec.DecodeError):
        codec.decode(codec.encode(event))  # what every replica does with a stream entry
    p = producer.Producer(MemoryLog())
    with pytest.raises(codec.DecodeError):
        p.send(event)
    assert p.flush() == []


def test_malformed_entries_are_dead_lettered_and_change_nothing() -> None:
    c = LocalCluster()
    c.append(BASE)
    bad = [schema.K8sDelete(ref=schema.ObjectRef(kind="ConfigMap", namespace="x", name="y")),
           schema.SpeakerDown(node="Node_A"), schema.K8sUpsert(obj=schema.Node(namespace="kube-system", name=NODES[0]))]
    positions = c.append_raw([codec.encode(e) for e in bad])  # a producer that skipped validation
    d = daemonmod.Daemon(c, daemonmod.Settings(replica="r", page=50, block_ms=1))
    d.boot()
    while d.step(timeout_ms=1) or not d.caught_up:
        pass
    assert d.dead == 3 and sorted(c.dead) == positions
    assert decisions.state_hash(d.state) == decisions.state_hash(fold.fold(BASE, statemod.new()))


# -- fold.screen ---------------------------------------------------------------------------------------------

def folded() -> statemod.State:
    return fold.fold(BASE, statemod.new())


def test_screen_reasons() -> None:
    st = folded()
    nss = (NS,)
    assert fold.screen(st, pool("default"), nss) == (False, fold.FOREIGN_NAMESPACE)
    assert fold.screen(st, schema.K8sDelete(ref=schema.ObjectRef(kind="IPAddressPool", namespace="x", name="p")),
                       nss) == (False, fold.FOREIGN_NAMESPACE)
    assert fold.screen(st, pool(NS, "extra"), nss) == (True, None)
    assert fold.screen(st, pool("default"), (NS, "default")) == (True, None)  # a namespace the replica honours
    assert fold.screen(st, schema.SpeakerDown(node="ghost"), nss) == (True, fold.UNKNOWN_NODE)
    assert fold.screen(st, schema.SpeakerUp(node=NODES[0]), nss) == (True, fold.UNCHANGED_LIVENESS)
    assert fold.screen(st, schema.SpeakerDown(node=NODES[0]), nss) == (True, None)
    fold.apply(st, schema.SpeakerDown(node=NODES[0]))
    assert fold.screen(st, schema.SpeakerDown(node=NODES[0]), nss) == (True, fold.UNCHANGED_LIVENESS)
    assert fold.screen(st, schema.K8sDelete(ref=schema.ObjectRef(kind="Service", namespace="a", name="nope")),
                       nss) == (True, fold.UNKNOWN_OBJECT)
    # a Service or an EndpointSlice in any namespace is normal (streamlb watches them everywhere)
    svc = next(e for e in BASE if isinstance(e, schema.K8sUpsert) and isinstance(e.obj, schema.Service))
    assert fold.screen(st, svc, nss) == (True, None)


def test_applied_oddities_change_no_decision() -> None:
    st = folded()
    h = decisions.state_hash(st)
    for e in (schema.SpeakerDown(node="ghost"), schema.SpeakerUp(node="ghost"), schema.SpeakerUp(node=NODES[1]),
              schema.K8sDelete(ref=schema.ObjectRef(kind="Service", namespace="a", name="nope"))):
        ok, reason = fold.screen(st, e, (NS,))
        assert ok and reason is not None
        fold.apply(st, e)
        assert decisions.state_hash(st) == h, e


def test_unknown_node_liveness_takes_effect_when_the_node_appears() -> None:
    """The watcher (Node objects) and the liveness monitor are independent producers: a speaker.down that
    arrives before its Node is kept, so the Node does not come up as announcing."""
    ok, reason = fold.screen(statemod.new(), schema.SpeakerDown(node="late"), (NS,))
    assert (ok, reason) == (True, fold.UNKNOWN_NODE)
    st = fold.fold([schema.SpeakerDown(node="late"), schema.K8sUpsert(obj=schema.Node(name="late"))], statemod.new())
    assert "late" in st.speakers_down


# -- daemons and replay agree --------------------------------------------------------------------------------

def test_daemon_ignores_foreign_metallb_objects_counts_them_and_agrees_with_replay(tmp_path: Path) -> None:
    # a pool in a foreign namespace that would take every address first if it counted (sorted before the others)
    evil = [pool("default", "aaa-first", ("192.0.2.0/24",)),
            schema.K8sUpsert(obj=schema.L2Advertisement(namespace="default", name="aaa"))]
    events = BASE[:150] + evil + BASE[150:] + [schema.SpeakerDown(node="ghost")]
    c = LocalCluster()
    c.append(events)
    d = daemonmod.Daemon(c, daemonmod.Settings(replica="r", page=50, block_ms=1))
    d.boot()
    while d.step(timeout_ms=1) or not d.caught_up:
        pass
    assert d.dead == 0
    clean = fold.fold(BASE + [schema.SpeakerDown(node="ghost")], statemod.new())
    assert decisions.state_hash(d.state) == decisions.state_hash(clean)
    assert ("default", "aaa-first") not in d.state.objects["IPAddressPool"]
    counts = {s.labels["reason"]: s.value for m in d.metrics.registry.collect() if m.name == "streamlb_events_screened"
              for s in m.samples if s.name.endswith("_total")}
    assert counts["foreignNamespace"] == 2 and counts["unknownNode"] == 1
    assert set(counts) <= {"foreignNamespace", "unknownNode", "unchangedLiveness"}  # the generator repeats ups
    # and the same log replayed offline (native JSON lines) ignores the same two objects
    f = tmp_path / "log.jsonl"
    f.write_bytes(b"".join(codec.encode_json(e) + b"\n" for e in events))
    res = json.loads(replaymod.replay([str(f)]).to_json())
    assert res["state_hash"] == decisions.state_hash(clean)
    assert res["ignored"] == {"metallb.io/IPAddressPool[namespace default]": 1,
                              "metallb.io/L2Advertisement[namespace default]": 1}


def test_a_replica_started_for_another_namespace_honours_it() -> None:
    events = BASE + [pool("tenant-lb", "zzz", ("198.51.100.0/24",))]
    c = LocalCluster()
    c.append(events)
    d = daemonmod.Daemon(c, daemonmod.Settings(replica="r", page=50, block_ms=1,
                                               metallb_namespaces=(NS, "tenant-lb")))
    d.boot()
    while d.step(timeout_ms=1) or not d.caught_up:
        pass
    assert ("tenant-lb", "zzz") in d.state.objects["IPAddressPool"]


def test_inputs_ignore_native_metallb_objects_outside_the_namespaces(tmp_path: Path) -> None:
    f = tmp_path / "x.jsonl"
    f.write_bytes(codec.encode_json(pool("default")) + b"\n" + codec.encode_json(pool(NS, "ok")) + b"\n")
    outcomes = [o for rec in inputs.read_file(f) for o in rec.outcomes]
    assert outcomes[0] == inputs.Ignored("metallb.io/IPAddressPool[namespace default]")
    assert isinstance(outcomes[1], inputs.Accepted)
    outs = [o for rec in inputs.read_file(f, inputs.Options(metallb_namespaces=("default",))) for o in rec.outcomes]
    assert isinstance(outs[0], inputs.Accepted) and isinstance(outs[1], inputs.Ignored)
