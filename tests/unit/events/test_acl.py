"""The Redis ACL roles (events/acl.py), the shipped ``deploy/redis/users.acl`` and ``streamlb redis-acl``.

What each role can really do is proven against a real redis-server in tests/integration/test_redis_acl_tls.py;
these tests pin the text and the command line.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from events import acl, stream
from reconciler.runtime.cli.app import app

ROOT = Path(__file__).resolve().parents[3]


def test_shipped_users_acl_is_the_rendering_for_cluster_default() -> None:
    shipped = (ROOT / "deploy" / "redis" / "users.acl").read_text()
    assert shipped == acl.render("default")
    lines = [ln for ln in shipped.splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "user default off resetpass resetkeys resetchannels -@all"
    assert [ln.split()[1] for ln in lines[1:]] == ["streamlb-producer", "streamlb-reconciler", "streamlb-speaker"]
    # without passwords nobody can log in: no '>' clear text, no '#' hash, no nopass
    for ln in lines:
        assert not any(w.startswith((">", "#")) or w == "nopass" for w in ln.split()), ln


@pytest.mark.parametrize("role", acl.ROLES)
def test_key_patterns_name_only_this_clusters_keys(role: str) -> None:
    rules = acl.rules(role, "prod-1")
    keys = [r for r in rules if "~" in r]
    assert keys and all(r.split("~", 1)[1].startswith("streamlb:{prod-1}:") for r in keys)
    assert "~*" not in rules and "allkeys" not in rules and "+@all" not in rules and rules[1] == "-@all"
    # every pattern names a key of the layout (design.md §2 + the status key)
    names = {"events", "snapshot", "deadletter", "decisions", "leader", "speaker:*", "status:*"}
    assert {r.split("}:", 1)[1] for r in keys} <= names


def test_patterns_match_the_keys_the_adapter_uses() -> None:
    keys = stream.Keys("c1")
    p = acl.prefix("c1")
    assert keys.events == p + "events" and keys.snapshot == p + "snapshot" and keys.leader == p + "leader"
    assert keys.deadletter == p + "deadletter" and keys.decisions == p + "decisions"
    assert keys.speaker("n1") == p + "speaker:n1"


def test_what_each_role_may_write() -> None:
    k = stream.Keys("c")
    assert acl.roles_allowed("xadd", k.events) == ["producer", "reconciler"]
    assert acl.roles_allowed("hset", k.snapshot) == ["reconciler"]
    assert acl.roles_allowed("xadd", k.decisions) == ["reconciler"]
    assert acl.roles_allowed("set", k.leader) == ["reconciler"]
    assert acl.roles_allowed("set", k.speaker("n")) == ["speaker"]
    assert acl.roles_allowed("set", "streamlb:{c}:status:n") == ["speaker"]
    assert acl.roles_allowed("xrange", k.events) == ["producer", "reconciler", "speaker"]
    assert acl.roles_allowed("flushall", None) == []


def test_passwords_are_hashed_never_written_in_clear() -> None:
    text = acl.render("blue", {"producer": "p-secret", "speaker": "s-secret"})
    assert "p-secret" not in text and "s-secret" not in text
    prod = next(ln for ln in text.splitlines() if ln.startswith("user streamlb-producer "))
    assert "#" + hashlib.sha256(b"p-secret").hexdigest() in prod.split()
    rec = next(ln for ln in text.splitlines() if ln.startswith("user streamlb-reconciler "))
    assert not any(w.startswith("#") for w in rec.split())  # no password given: cannot log in
    assert "streamlb:{blue}:events" in text and "{default}" not in text


@pytest.mark.parametrize("bad", ["a*", "x?y", "[a]", "a b", "", "a\\b", "{x}"])
def test_cluster_names_that_would_be_glob_patterns_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="cannot be rendered"):
        acl.render(bad)


def test_cli_render_with_password_files(tmp_path: Path) -> None:
    (tmp_path / "p").write_text("pw-of-producer\n")
    r = CliRunner().invoke(app, ["redis-acl", "render", "--cluster", "green", "--password-file",
                                 f"producer={tmp_path / 'p'}", "--out", str(tmp_path / "users.acl")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "users.acl").read_text() == acl.render("green", {"producer": "pw-of-producer"})


@pytest.mark.parametrize("args, needle", [
    (["--password-file", "admin=/x"], "expected ROLE=FILE"),
    (["--password-file", "speaker=/nonexistent/pw"], "cannot read"),
    (["--cluster", "a*b"], "cannot be rendered"),
])
def test_cli_render_bad_input_is_one_line_exit_2(args: list[str], needle: str) -> None:
    r = CliRunner().invoke(app, ["redis-acl", "render", *args])
    assert r.exit_code == 2 and needle in r.output and "Traceback" not in r.output


def test_readme_lists_each_roles_exact_rules() -> None:
    text = (ROOT / "README.md").read_text()
    rows = {}
    for line in text.splitlines():
        if line.startswith("| `streamlb-"):
            cells = [c.strip().replace("\\|", "|") for c in line.replace("\\|", "\x00").split("|")[1:-1]]
            cells = [c.replace("\x00", "|") for c in cells]
            rows[cells[0].strip("` ").split("`")[0]] = cells
    assert set(rows) == {acl.role(r).user for r in acl.ROLES}
    for r in acl.ROLES:
        role = acl.role(r)
        _, _, commands, keys = rows[role.user]
        assert commands.strip("`") == " ".join(role.commands)
        assert keys.strip("`") == " ".join(k.format(p=acl.prefix("default")) for k in role.keys)
    assert "user default off resetpass resetkeys resetchannels -@all" in text
    assert " ".join(acl.CONNECTION) in text and " ".join(acl.CLUSTER_TOPOLOGY).replace("|", "\\|") in text


def test_per_node_speaker_users_write_only_their_nodes_keys(tmp_path: Path) -> None:
    rules = acl.node_speaker_rules("node-a.rack1", "c")
    writable = [r for r in rules if r.startswith("~")]
    assert writable == ["~streamlb:{c}:speaker:node-a.rack1", "~streamlb:{c}:status:node-a.rack1"]
    shared = acl.rules("speaker", "c")
    assert [r for r in rules if not r.startswith("~")] == [r for r in shared if not r.startswith("~")]
    (tmp_path / "pw").write_text("node-pw")
    r = CliRunner().invoke(app, ["redis-acl", "render", "--cluster", "c", "--speaker-node", f"node-b={tmp_path / 'pw'}",
                                 "--speaker-node", "node-a.rack1"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[-2].startswith("user streamlb-speaker-node-a.rack1 reset on resetchannels ")
    assert lines[-1].startswith(f"user streamlb-speaker-node-b reset on #{hashlib.sha256(b'node-pw').hexdigest()} ")
    for bad in ("Node_A", "a*", "x y"):
        with pytest.raises(ValueError, match="not a Kubernetes node name"):
            acl.node_speaker_rules(bad)
