"""The watch-line fast path (events.watchjson) gives exactly the outcome of the reference path (json + dicts).

The reference path is ``inputs._from_json_value(json.loads(line))``; the fast path is what ``inputs`` does first
for every JSON line. They must agree on every line: accepted events equal, ignored keys equal, refusals with the
same reason (the fast path hands every line it does not fully handle to the reference path).
"""

from __future__ import annotations

import copy
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks import data
from events import inputs, watchjson

OPTS = inputs.Options()


def reference(line: str) -> list:
    try:
        value = json.loads(line)
    except ValueError as exc:
        return [inputs.Rejected(f"invalid JSON: {exc}")]
    return inputs._from_json_value(value, OPTS)


def through_inputs(line: str, tmp_path) -> list:
    p = tmp_path / "one.jsonl"
    p.write_text(line + "\n")
    (rec,) = list(inputs.read_file(p))
    return rec.outcomes


LINES = [ln.decode() for ln in data.watch_log_lines(40)]


def test_generated_watch_log_takes_the_fast_path_and_equals_the_reference(tmp_path) -> None:
    fast = 0
    for line in LINES:
        if watchjson.translate_line(line) is not None:
            fast += 1
        assert through_inputs(line, tmp_path) == reference(line)
    assert fast == 2 * 40 + 3  # Services, EndpointSlices, the Node and both Namespaces (MetalLB kinds: reference)


def test_what_the_fast_path_leaves_to_the_reference_path(tmp_path) -> None:
    svc = json.loads(LINES[6])
    cases = []
    for kind in ("BOOKMARK", "ERROR", "SYNC"):
        cases.append({**svc, "type": kind})
    other_api = copy.deepcopy(svc)
    other_api["object"]["apiVersion"] = "v2"
    cases.append(other_api)
    bad_ip = copy.deepcopy(svc)
    bad_ip["object"]["spec"]["clusterIPs"] = ["10.96.0.010"]
    cases.append(bad_ip)
    bad_type = copy.deepcopy(svc)
    bad_type["object"]["spec"]["ports"][0]["port"] = "80"
    cases.append(bad_type)
    fqdn = json.loads(LINES[7])
    fqdn["object"]["addressType"] = "FQDN"
    for case in cases:
        line = json.dumps(case)
        assert watchjson.translate_line(line) is None
        assert through_inputs(line, tmp_path) == reference(line)
    deleted = {**svc, "type": "DELETED"}
    fqdn_deleted = {**fqdn, "type": "DELETED"}
    for case in (fqdn, deleted, fqdn_deleted):  # handled (an event or an ignored key), and equal
        line = json.dumps(case)
        assert watchjson.translate_line(line) is not None
        assert through_inputs(line, tmp_path) == reference(line)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=12)
    | st.sampled_from(["10.1.2.3", "fd00::1", "FD00::0A", "10.0.0.01", "v1", "Service", "ADDED", "LoadBalancer"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


@settings(max_examples=300, deadline=None)
@given(base=st.sampled_from(LINES[3:10]), data_=st.data())
def test_mutated_watch_lines_agree_with_the_reference(base: str, data_, tmp_path_factory) -> None:
    obj = json.loads(base)
    paths = [p for p in _paths(obj) if p]
    for _ in range(data_.draw(st.integers(1, 3))):
        path = data_.draw(st.sampled_from(paths))
        parent = obj
        try:
            for k in path[:-1]:
                parent = parent[k]
            if data_.draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = data_.draw(json_values)
        except (KeyError, IndexError, TypeError):
            continue
    line = json.dumps(obj)
    assert through_inputs(line, tmp_path_factory.mktemp("w")) == reference(line)
