"""Fixtures for the Kubernetes tests: a fake API server on 127.0.0.1 and helpers to compare it with a log."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from events import codec, kube, log as evlog, schema
from reconciler.runtime.kube import watch as kube_watch
from tests.kube.fakeapi import FakeKube

WATCHED = ("Service", "Node", "Namespace", "EndpointSlice", "IPAddressPool", "L2Advertisement", "BGPAdvertisement",
           "BGPPeer", "Community", "BFDProfile")


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    f = FakeKube(bookmark_interval=0.3).start()
    try:
        yield f
    finally:
        f.stop()


@pytest.fixture
def kubeconfig(fake: FakeKube, tmp_path: Path) -> str:
    return fake.kubeconfig(tmp_path / "kubeconfig.json")


def expected_objects(fake: FakeKube) -> dict[str, schema.K8sObject]:
    """What the log must say now: the translation of every object the cluster holds."""
    out: dict[str, schema.K8sObject] = {}
    for kind in WATCHED:
        for o in fake.objects_of(kind):
            if kind == "BGPPeer":
                o["apiVersion"] = "metallb.io/v1beta2"  # the version the watcher reads, whatever it was written as
            got = kube.translate(o)
            if isinstance(got, kube.Ignored):
                continue
            out[kube_watch.object_key(kind, got.namespace, got.name)] = got
    return out


def log_events(log: evlog.EventLog) -> list[schema.Event]:
    return [evlog.decode_record(r) for r in log.read()]


def log_objects(events: list[schema.Event]) -> dict[str, schema.K8sObject]:
    out: dict[str, schema.K8sObject] = {}
    for e in events:
        if isinstance(e, schema.K8sUpsert):
            out[kube_watch.object_key(type(e.obj).__struct_config__.tag, e.obj.namespace, e.obj.name)] = e.obj
        elif isinstance(e, schema.K8sDelete):
            out.pop(kube_watch.object_key(e.ref.kind, e.ref.namespace, e.ref.name), None)
    return out


def duplicates(events: list[schema.Event]) -> list[str]:
    """Events that change nothing: an upsert equal to the object's current version, a delete of an absent one."""
    current: dict[str, bytes] = {}
    dups = []
    for i, e in enumerate(events):
        if isinstance(e, schema.K8sUpsert):
            key = kube_watch.object_key(type(e.obj).__struct_config__.tag, e.obj.namespace, e.obj.name)
            blob = codec.encode(e)
            if current.get(key) == blob:
                dups.append(f"#{i} upsert {key}")
            current[key] = blob
        elif isinstance(e, schema.K8sDelete):
            key = kube_watch.object_key(e.ref.kind, e.ref.namespace, e.ref.name)
            if key not in current:
                dups.append(f"#{i} delete {key}")
            current.pop(key, None)
    return dups


def wait_for(cond: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
