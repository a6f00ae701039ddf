"""The deployment manifests under ``deploy/``: every object is a valid Kubernetes object, RBAC is least privilege
per component, the workloads are wired as the design says, and the CRDs accept MetalLB's own objects.

The kustomize build is done twice: by a small loader here (resources + strategic-merge patches, the subset the
layout uses) and, where ``kubectl`` is installed, by ``kubectl kustomize``; both must give the same objects.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.kube import metallb_dump

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
TARGETS = {"base": DEPLOY / "base", "external-redis": DEPLOY / "overlays" / "external-redis"}
api = client.ApiClient()


# --------------------------------------------------------------------------------------------------------------
# A minimal kustomize


def _load_yaml(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _ident(obj: dict) -> tuple[str, str, str, str]:
    m = obj.get("metadata", {})
    return (obj["apiVersion"], obj["kind"], m.get("namespace", ""), m["name"])


def _merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = _merge(base[k], v) if k in base else v
        return out
    return copy.deepcopy(patch)


def build(directory: Path) -> list[dict]:
    kust = yaml.safe_load((directory / "kustomization.yaml").read_text())
    allowed = {"apiVersion", "kind", "resources", "patches"}
    assert set(kust) <= allowed, f"{directory}: loader does not implement {set(kust) - allowed}"
    objs: list[dict] = []
    for res in kust.get("resources", []):
        p = (directory / res).resolve()
        objs.extend(build(p) if p.is_dir() else _load_yaml(p))
    for patch in kust.get("patches", []):
        assert set(patch) == {"path"}, patch
        for doc in _load_yaml(directory / patch["path"]):
            ident = _ident({k: v for k, v in doc.items() if k != "$patch"})
            idx = [i for i, o in enumerate(objs) if _ident(o) == ident]
            assert len(idx) == 1, f"patch target {ident} matched {len(idx)} objects"
            if doc.get("$patch") == "delete":
                del objs[idx[0]]
            else:
                objs[idx[0]] = _merge(objs[idx[0]], doc)
    return objs


@pytest.fixture(scope="module", params=sorted(TARGETS))
def target(request: pytest.FixtureRequest) -> tuple[str, list[dict]]:
    return request.param, build(TARGETS[request.param])


def by_kind(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_loader_agrees_with_kubectl_kustomize(name: str) -> None:
    out = subprocess.run(["kubectl", "kustomize", str(TARGETS[name])], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    theirs = sorted((d for d in yaml.safe_load_all(out.stdout) if d), key=_ident)
    ours = sorted(build(TARGETS[name]), key=_ident)
    assert [_ident(o) for o in ours] == [_ident(o) for o in theirs]
    assert ours == theirs


# --------------------------------------------------------------------------------------------------------------
# Every object is a Kubernetes object


def _model_name(obj: dict) -> str:
    group, _, version = obj["apiVersion"].rpartition("/")
    prefix = {"": "", "apps": "", "rbac.authorization.k8s.io": "", "apiextensions.k8s.io": "",
              "coordination.k8s.io": "", "discovery.k8s.io": ""}[group]
    return f"{prefix}{version.capitalize()}{obj['kind']}"


def _drop_none(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _drop_none(v) for k, v in x.items() if v is not None}
    if isinstance(x, list):
        return [_drop_none(v) for v in x]
    return x


def test_every_object_deserializes_into_its_model_without_losing_a_field(target) -> None:
    name, objs = target
    assert len(objs) >= 25
    custom = 0
    for obj in objs:
        if obj["apiVersion"] == "monitoring.coreos.com/v1":
            custom += 1
            continue
        model = _model_name(obj)
        assert hasattr(client, model), f"no model {model} for {_ident(obj)}"
        m = api._ApiClient__deserialize(copy.deepcopy(obj), model)
        back = _drop_none(api.sanitize_for_serialization(m))
        # A misspelt or misplaced field is silently dropped by the model: the round trip shows it.
        assert back == obj, f"{_ident(obj)} does not round-trip through {model}"
    assert custom == 1  # the ServiceMonitor, checked below


def test_servicemonitor_selects_the_metrics_service_port() -> None:
    objs = build(TARGETS["base"])
    sm = one(objs, "ServiceMonitor", "streamlb")
    sel = api._ApiClient__deserialize(sm["spec"]["selector"], "V1LabelSelector")
    svc = one(objs, "Service", "streamlb-metrics")
    labels = svc["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in sel.match_labels.items())
    assert {e["port"] for e in sm["spec"]["endpoints"]} <= {p["name"] for p in svc["spec"]["ports"]}
    assert sm["spec"]["namespaceSelector"]["matchNames"] == [svc["metadata"]["namespace"]]


# --------------------------------------------------------------------------------------------------------------
# RBAC: least privilege per component

EXPECTED_PERMISSIONS = {
    "streamlb-watcher": {
        ("*", "", "services", "list"), ("*", "", "services", "watch"),
        ("*", "", "nodes", "list"), ("*", "", "nodes", "watch"),
        ("*", "", "namespaces", "list"), ("*", "", "namespaces", "watch"),
        ("*", "discovery.k8s.io", "endpointslices", "list"), ("*", "discovery.k8s.io", "endpointslices", "watch"),
        *{("metallb-system", "metallb.io", r, v)
          for r in ("ipaddresspools", "l2advertisements", "bgpadvertisements", "bgppeers", "communities",
                    "bfdprofiles") for v in ("list", "watch")},
        ("streamlb-system", "coordination.k8s.io", "leases", "create"),
        ("streamlb-system", "coordination.k8s.io", "leases[streamlb-watcher]", "get"),
        ("streamlb-system", "coordination.k8s.io", "leases[streamlb-watcher]", "update"),
    },
    "streamlb-reconciler": {
        ("*", "", "services", "get"), ("*", "", "services", "patch"), ("*", "", "services/status", "patch"),
        ("*", "", "events", "create"),
        ("metallb-system", "metallb.io", "ipaddresspools", "get"),
        ("metallb-system", "metallb.io", "ipaddresspools/status", "patch"),
        ("metallb-system", "metallb.io", "servicel2statuses/status", "patch"),
        ("metallb-system", "metallb.io", "servicel2statuses", "list"),
        ("metallb-system", "metallb.io", "servicel2statuses", "create"),
        ("metallb-system", "metallb.io", "servicel2statuses", "delete"),
        ("metallb-system", "metallb.io", "servicebgpstatuses/status", "patch"),
        ("metallb-system", "metallb.io", "servicebgpstatuses", "get"),
        ("metallb-system", "metallb.io", "servicebgpstatuses", "list"),
        ("metallb-system", "metallb.io", "servicebgpstatuses", "create"),
        ("metallb-system", "metallb.io", "servicebgpstatuses", "delete"),
    },
    "streamlb-speaker": set(),
    "streamlb-redis": set(),
}


def permissions(objs: list[dict]) -> dict[str, set[tuple[str, str, str, str]]]:
    roles = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
             for o in objs if o["kind"] in ("Role", "ClusterRole")}
    out: dict[str, set] = {sa["metadata"]["name"]: set() for sa in by_kind(objs, "ServiceAccount")}
    for b in by_kind(objs, "RoleBinding") + by_kind(objs, "ClusterRoleBinding"):
        ns = b["metadata"].get("namespace", "")
        ref = b["roleRef"]
        role = roles[(ref["kind"], "" if ref["kind"] == "ClusterRole" else ns, ref["name"])]
        scope = "*" if b["kind"] == "ClusterRoleBinding" else ns
        for subj in b["subjects"]:
            assert subj["kind"] == "ServiceAccount"
            for rule in role["rules"]:
                for g in rule["apiGroups"]:
                    for r in rule["resources"]:
                        names = rule.get("resourceNames")
                        for v in rule["verbs"]:
                            if names:
                                for n in names:
                                    out[subj["name"]].add((scope, g, f"{r}[{n}]", v))
                            else:
                                out[subj["name"]].add((scope, g, r, v))
    return out


def test_rbac_grants_exactly_what_each_component_needs(target) -> None:
    name, objs = target
    perms = permissions(objs)
    expected = dict(EXPECTED_PERMISSIONS)
    if name == "external-redis":
        expected.pop("streamlb-redis")
    assert perms == expected


def test_rbac_has_no_wildcards_and_no_secret_access(target) -> None:
    _, objs = target
    for role in by_kind(objs, "Role") + by_kind(objs, "ClusterRole"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], (role["metadata"]["name"], field)
            assert not {"escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"])
    for sa, perms in permissions(objs).items():
        assert not any(r.startswith("secrets") for _, _, r, _ in perms), sa
    # components that never call the API get no token
    for sa in ("streamlb-speaker", "streamlb-redis"):
        if any(o["metadata"]["name"] == sa for o in by_kind(objs, "ServiceAccount")):
            assert one(objs, "ServiceAccount", sa)["automountServiceAccountToken"] is False


def test_watcher_rbac_covers_exactly_what_the_watcher_watches() -> None:
    from reconciler.runtime.kube import watch as kube_watch

    perms = permissions(build(TARGETS["base"]))["streamlb-watcher"]
    need = set()
    for res in kube_watch.RESOURCES:
        scope = res.namespace or "*"
        for verb in ("list", "watch"):
            need.add((scope if res.namespaced_in_metallb else "*", res.group, res.plural, verb))
    assert {p for p in perms if p[2] != "leases" and not p[2].startswith("leases[")} == need


# --------------------------------------------------------------------------------------------------------------
# Workloads


def _pod(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]


def test_speaker_is_host_network_with_only_the_capabilities_it_needs(target) -> None:
    _, objs = target
    ds = one(objs, "DaemonSet", "streamlb-speaker")
    pod = _pod(ds)
    assert pod["hostNetwork"] is True and pod["automountServiceAccountToken"] is False
    args = pod["containers"][0]["args"]
    secret_dir = args[args.index("--secrets-dir") + 1]
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols[mounts[secret_dir]]["secret"] == {"secretName": "streamlb-bgp-passwords", "optional": True,
                                                  "defaultMode": 0o400}
    for c in pod["containers"]:
        sc = c["securityContext"]
        added = ["NET_RAW", "NET_ADMIN"]
        # the speaker also listens for routers' BGP connections (default port 179): a port below 1024 needs
        # NET_BIND_SERVICE, or the bind fails and it silently connects out only
        port = int(args[args.index("--bgp-listen-port") + 1]) if "--bgp-listen-port" in args else 179
        if 0 < port < 1024:
            added.append("NET_BIND_SERVICE")
        assert sc["capabilities"] == {"drop": ["ALL"], "add": added}
        assert sc.get("privileged") is not True and sc["allowPrivilegeEscalation"] is False
    others = [o for o in objs if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet") and o is not ds]
    assert others
    for o in others:
        pod = _pod(o)
        assert not pod.get("hostNetwork")
        for c in pod["containers"]:
            assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}, o["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True


def test_replicas_and_commands(target) -> None:
    _, objs = target
    rec = one(objs, "Deployment", "streamlb-reconciler")
    assert rec["spec"]["replicas"] == 2
    assert _pod(rec)["containers"][0]["args"][:2] == ["run", "--write-status"]
    watcher = one(objs, "Deployment", "streamlb-watcher")
    assert watcher["spec"]["replicas"] >= 2 and _pod(watcher)["containers"][0]["args"][0] == "watch"
    assert _pod(one(objs, "DaemonSet", "streamlb-speaker"))["containers"][0]["args"][:2] == ["speak", "--node"]


def deploy_time_secrets() -> list[dict]:
    """The Secrets the README has the user create before the first start (``streamlb redis-acl secrets``)."""
    from typer.testing import CliRunner

    from reconciler.runtime.cli.app import app

    r = CliRunner().invoke(app, ["redis-acl", "secrets"])
    assert r.exit_code == 0, r.output
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def test_references_resolve(target) -> None:
    """Every ServiceAccount, ConfigMap, Secret and key a pod names exists in its namespace (the manifests plus the
    Secrets created at deploy time); selectors match."""
    _, objs = target
    have = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
            for o in objs + deploy_time_secrets()}
    for w in (o for o in objs if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet")):
        ns = w["metadata"]["namespace"]
        pod = _pod(w)
        assert ("ServiceAccount", ns, pod["serviceAccountName"]) in have
        labels = w["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in w["spec"]["selector"]["matchLabels"].items())
        for c in pod["containers"]:
            for ef in c.get("envFrom", []):
                assert ("ConfigMap", ns, ef["configMapRef"]["name"]) in have
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    sec = have[("Secret", ns, ref["name"])]
                    assert ref["key"] in {**sec.get("stringData", {}), **sec.get("data", {})}
        for v in pod.get("volumes", []):
            if "configMap" in v:
                assert ("ConfigMap", ns, v["configMap"]["name"]) in have
            if "secret" in v and not v["secret"].get("optional"):
                assert ("Secret", ns, v["secret"]["secretName"]) in have
    for svc in by_kind(objs, "Service"):
        sel = svc["spec"]["selector"]
        assert any(all(o["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in sel.items())
                   for o in objs if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet")), svc["metadata"]["name"]


def test_bundled_redis_persists_with_aof_and_overlay_removes_it() -> None:
    base = build(TARGETS["base"])
    sts = one(base, "StatefulSet", "streamlb-redis")
    conf = one(base, "ConfigMap", "streamlb-redis-config")["data"]["redis.conf"]
    assert re.search(r"^appendonly yes$", conf, re.M) and re.search(r"^dir /data$", conf, re.M)
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert {m["mountPath"] for m in _pod(sts)["containers"][0]["volumeMounts"]} >= {"/data"}
    url = one(base, "Secret", "streamlb-redis")["stringData"]["url"]
    assert url.startswith("redis://streamlb-redis-0.streamlb-redis.streamlb-system.svc:")
    ext = build(TARGETS["external-redis"])
    assert not [o for o in ext if "redis" in o["metadata"]["name"] and o["kind"] not in ("Secret",)]
    assert one(ext, "Secret", "streamlb-redis")["stringData"]["url"].startswith("redis+sentinel://")


# --------------------------------------------------------------------------------------------------------------
# CRDs accept MetalLB's own objects


def _check(schema: dict, value: Any, path: str) -> None:
    t = schema.get("type")
    types = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int}
    if t:
        assert isinstance(value, types[t]) and not (t == "integer" and isinstance(value, bool)), path
    if t == "integer":
        if "minimum" in schema:
            assert value >= schema["minimum"], path
        if "maximum" in schema:
            assert value <= schema["maximum"], path
    if "enum" in schema:
        assert value in schema["enum"], path
    if t == "object":
        for r in schema.get("required", []):
            assert r in value, f"{path}.{r} required"
        props = schema.get("properties")
        for k, v in value.items():
            if props is not None and k in props:
                _check(props[k], v, f"{path}.{k}")
            elif "additionalProperties" in schema:
                _check(schema["additionalProperties"], v, f"{path}.{k}")
            elif props is not None and not schema.get("x-kubernetes-preserve-unknown-fields"):
                if path.count(".") >= 1 or k not in ("metadata",):
                    raise AssertionError(f"{path}.{k} would be pruned")
    if t == "array":
        for i, v in enumerate(value):
            _check(schema["items"], v, f"{path}[{i}]")


def _structural(schema: dict, path: str) -> None:
    assert "type" in schema, f"{path}: no type (not structural)"
    for k, v in schema.get("properties", {}).items():
        _structural(v, f"{path}.{k}")
    if "items" in schema:
        _structural(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        _structural(schema["additionalProperties"], f"{path}.*")


def test_crds_are_structural_and_accept_metallb_objects() -> None:
    import random

    crds = {(c["spec"]["names"]["kind"]): c for c in by_kind(build(TARGETS["base"]), "CustomResourceDefinition")}
    assert sorted(crds) == ["BFDProfile", "BGPAdvertisement", "BGPPeer", "Community", "IPAddressPool",
                            "L2Advertisement", "ServiceBGPStatus", "ServiceL2Status"]
    for c in crds.values():
        assert c["spec"]["group"] == "metallb.io" and c["spec"]["scope"] == "Namespaced"
        assert sum(v["storage"] for v in c["spec"]["versions"]) == 1
        for v in c["spec"]["versions"]:
            _structural(v["schema"]["openAPIV3Schema"], f"{c['metadata']['name']}/{v['name']}")
    assert [v["name"] for v in crds["BGPPeer"]["spec"]["versions"] if v["storage"]] == ["v1beta2"]
    checked = 0
    for obj in metallb_dump.config_objects(random.Random(1)):
        group, _, version = obj["apiVersion"].rpartition("/")
        if group != "metallb.io" or obj["kind"] not in crds:
            continue
        ver = [v for v in crds[obj["kind"]]["spec"]["versions"] if v["name"] == version]
        assert ver and ver[0]["served"], obj["apiVersion"]
        _check(ver[0]["schema"]["openAPIV3Schema"], obj, obj["kind"])
        checked += 1
    assert checked >= 10
    # and the check can fail: a wrong type is caught
    bad = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "x"},
           "spec": {"addresses": "10.0.0.0/24"}}
    with pytest.raises(AssertionError):
        _check(crds["IPAddressPool"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"], bad, "IPAddressPool")


# --------------------------------------------------------------------------------------------------------------
# Dockerfile


def test_dockerfile_installs_the_project_and_runs_the_cli() -> None:
    text = (ROOT / "Dockerfile").read_text()
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())
    roots = {p.split(".")[0] for p in py["tool"]["setuptools"]["packages"]}
    copied = set(re.findall(r"^COPY (\w+) \./\w+$", text, re.M))
    assert roots <= copied, roots - copied
    assert py["project"]["scripts"]["streamlb"] == "reconciler.runtime.cli.app:main"
    assert re.search(r'^ENTRYPOINT \["streamlb"\]$', text, re.M)
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and not user[-1].startswith(("0", "root"))
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(froms) == 2 and all(":" in f and "latest" not in f for f in froms)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".git" in ignored and "tests" in ignored


def test_round_trip_catches_a_misspelt_field() -> None:
    ds = copy.deepcopy(one(build(TARGETS["base"]), "DaemonSet", "streamlb-speaker"))
    ds["spec"]["template"]["spec"]["hostNetwrk"] = True
    m = api._ApiClient__deserialize(copy.deepcopy(ds), _model_name(ds))
    assert _drop_none(api.sanitize_for_serialization(m)) != ds


def test_each_component_serves_metrics_on_its_named_port(target) -> None:
    _, objs = target
    for w in (o for o in objs if o["kind"] in ("Deployment", "DaemonSet")):
        c = _pod(w)["containers"][0]
        port = {p["name"]: p["containerPort"] for p in c["ports"]}["metrics"]
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["STREAMLB_METRICS_PORT"] == str(port), w["metadata"]["name"]


def test_container_args_are_accepted_by_the_cli(target) -> None:
    """Every workload's command line parses with the real CLI (flags drift is caught here, not in a cluster)."""
    import click
    import typer

    from reconciler.runtime.cli.app import app

    _, objs = target
    group = typer.main.get_command(app)
    checked = 0
    for w in (o for o in objs if o["kind"] in ("Deployment", "DaemonSet")):
        for c in _pod(w)["containers"]:
            args = [re.sub(r"\$\((\w+)\)", "value-of-\\1", a) for a in c["args"]]
            with click.Context(group) as ctx:
                sub = group.get_command(ctx, args[0])
                assert sub is not None, f"{w['kind']} {w['metadata']['name']} runs `{args[0]}`, not a streamlb command"
                sub.make_context(args[0], args[1:], parent=ctx)  # raises click.UsageError on a bad flag
            checked += 1
    assert checked == 3


# --------------------------------------------------------------------------------------------------------------
# Redis credentials: one Secret per role, each component gets only its own (issue 16)

ROLE_OF_WORKLOAD = {("Deployment", "streamlb-watcher"): "producer", ("Deployment", "streamlb-reconciler"): "reconciler",
                    ("DaemonSet", "streamlb-speaker"): "speaker"}


def _secrets_used(w: dict) -> set[str]:
    pod = _pod(w)
    out = set()
    for c in pod.get("containers", []) + pod.get("initContainers", []):
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                out.add(ref["name"])
        for ef in c.get("envFrom", []):
            if "secretRef" in ef:
                out.add(ef["secretRef"]["name"])
    for v in pod.get("volumes", []):
        if "secret" in v:
            out.add(v["secret"]["secretName"])
        for src in v.get("projected", {}).get("sources", []):
            if "secret" in src:
                out.add(src["secret"]["name"])
    return out


def test_each_component_gets_only_its_roles_redis_credential(target) -> None:
    from events import acl

    name, objs = target
    secrets = {d["metadata"]["name"]: d for d in deploy_time_secrets()}
    role_secrets = {f"streamlb-redis-{r}" for r in acl.ROLES}
    assert role_secrets | {"streamlb-redis-acl"} == set(secrets)
    workloads = [o for o in objs if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet")]
    seen = set()
    for w in workloads:
        used = _secrets_used(w)
        key = (w["kind"], w["metadata"]["name"])
        if key == ("StatefulSet", "streamlb-redis"):
            # the bundled Redis sees the users file (password hashes), never a role's password
            assert used == {"streamlb-redis-acl"}, used
            continue
        role = ROLE_OF_WORKLOAD[key]
        seen.add(role)
        assert used & (role_secrets | {"streamlb-redis-acl"}) == {f"streamlb-redis-{role}"}, (key, used)
        env = {e["name"]: e for e in _pod(w)["containers"][0]["env"]}
        for var, field in (("STREAMLB_REDIS_USERNAME", "username"), ("STREAMLB_REDIS_PASSWORD", "password")):
            ref = env[var]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": f"streamlb-redis-{role}", "key": field}, (key, var)
        assert secrets[f"streamlb-redis-{role}"]["stringData"]["username"] == acl.role(role).user
    assert seen == set(acl.ROLES)


def test_deploy_time_secrets_render_the_acl_with_each_roles_password() -> None:
    import hashlib

    from events import acl

    secrets = {d["metadata"]["name"]: d["stringData"] for d in deploy_time_secrets()}
    users = secrets["streamlb-redis-acl"]["users.acl"]
    pws = {r: secrets[f"streamlb-redis-{r}"]["password"] for r in acl.ROLES}
    assert len(set(pws.values())) == 3 and all(len(p) >= 32 for p in pws.values())
    assert users == acl.render("default", pws)
    for r, pw in pws.items():
        line = next(ln for ln in users.splitlines() if ln.startswith(f"user {acl.role(r).user} "))
        assert f"#{hashlib.sha256(pw.encode()).hexdigest()}" in line.split() and pw not in users
    # and the bundled Redis loads exactly that file
    conf = one(build(TARGETS["base"]), "ConfigMap", "streamlb-redis-config")["data"]["redis.conf"]
    path = re.search(r"^aclfile (\S+)$", conf, re.M).group(1)
    sts = one(build(TARGETS["base"]), "StatefulSet", "streamlb-redis")
    mounts = {m["name"]: m["mountPath"] for m in _pod(sts)["containers"][0]["volumeMounts"]}
    vols = {v["name"]: v for v in _pod(sts)["volumes"]}
    (vol,) = [n for n, v in vols.items() if v.get("secret", {}).get("secretName") == "streamlb-redis-acl"]
    assert path == f"{mounts[vol]}/users.acl"
