"""Bad input through the CLI: exit 2, one line naming the file/object, no traceback;
--debug shows the traceback."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from generator.cli import main
from generator.emit.gitrepo import write_repo
from generator.errors import UserError
from generator.yamlio import dump, dump_all

from test_emit_helpers import make_commits

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "kind-canal"


def cli(*args, cwd=None):
    r = subprocess.run([sys.executable, "-m", "generator", *map(str, args)],
                       capture_output=True, text=True, cwd=cwd or ROOT)
    return r.returncode, r.stdout, r.stderr


def assert_user_error(args, *expected, capsys):
    """Exit 2, a single 'cni-migrate: error:' line with `expected` in it; with --debug the
    same failure propagates (the traceback is shown). In-process: fast."""
    args = [str(a) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cni-migrate: error: "), err
    for text in expected:
        assert text in lines[0], (text, lines[0])
    with pytest.raises(UserError):
        main(["--debug", *args])
    capsys.readouterr()
    return lines[0]


BROKEN = "apiVersion: v1\nkind: ConfigMap\n  bad: indent\nmetadata: {name: x}\n"


@pytest.fixture
def snap(tmp_path):
    dst = tmp_path / "snap"
    shutil.copytree(EXAMPLE, dst)
    return dst


def test_malformed_yaml_names_file_and_line(snap, tmp_path, capsys):
    (snap / "broken.yaml").write_text(BROKEN)
    assert_user_error(["generate", "--from", snap, "--out", tmp_path / "o"],
                      f"{snap / 'broken.yaml'}:3: malformed YAML", capsys=capsys)
    assert not (tmp_path / "o").exists()


def test_real_process_prints_one_line_and_traceback_only_with_debug(snap, tmp_path):
    (snap / "broken.yaml").write_text(BROKEN)
    rc, out, err = cli("generate", "--from", snap, "--out", tmp_path / "o")
    assert rc == 2 and out == ""
    assert err == f"cni-migrate: error: {snap / 'broken.yaml'}:3: malformed YAML: " \
                  "mapping values are not allowed in this context\n"
    rc, out, err = cli("--debug", "generate", "--from", snap, "--out", tmp_path / "o")
    assert rc != 0 and "Traceback (most recent call last)" in err and "UserError" in err


def test_object_without_kind(snap, tmp_path, capsys):
    (snap / "odd.yaml").write_text(dump({"apiVersion": "v1", "metadata": {"name": "x"}}))
    assert_user_error(["generate", "--from", snap, "--out", tmp_path / "o"],
                      str(snap / "odd.yaml"), "without kind", capsys=capsys)


def test_unknown_policy_kind(tmp_path, capsys):
    f = tmp_path / "policy.yaml"
    f.write_text(dump({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicyX",
                       "metadata": {"name": "p"}, "spec": {}}))
    assert_user_error(["translate", f, "--out", tmp_path / "o",
                       "--report", tmp_path / "r.json"],
                      str(f), "GlobalNetworkPolicyX", capsys=capsys)


def test_invalid_cidr_in_snapshot(snap, tmp_path, capsys):
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "bad-node", "labels": {"kubernetes.io/hostname": "bad-node"}},
            "spec": {"podCIDR": "10.244.300.0/24", "podCIDRs": ["10.244.300.0/24"]},
            "status": {"addresses": [{"address": "172.18.0.9", "type": "InternalIP"}]}}
    (snap / "nodes-extra.yaml").write_text(dump(node))
    assert_user_error(["generate", "--from", snap, "--out", tmp_path / "o"],
                      "nodes-extra.yaml", "Node bad-node", "10.244.300.0/24", capsys=capsys)


def test_invalid_requested_cidr(snap, tmp_path, capsys):
    assert_user_error(["generate", "--from", snap, "--out", tmp_path / "o",
                       "--cilium-pod-cidr", "10.245.0.0/33"], "10.245.0.0/33", capsys=capsys)


def test_requested_cidr_overlapping(snap, tmp_path, capsys):
    line = assert_user_error(["generate", "--from", snap, "--out", tmp_path / "o",
                              "--cilium-pod-cidr", "10.244.128.0/17"], "10.244.128.0/17",
                             capsys=capsys)
    assert "overlap" in line


def test_unsupported_cilium_version(snap, tmp_path, capsys):
    assert_user_error(["generate", "--from", snap, "--out", tmp_path / "o",
                       "--cilium-version", "1.12"], "1.12", capsys=capsys)


def test_unknown_source_cni(snap, tmp_path, capsys):
    (snap / "daemonsets.yaml").write_text(dump_all([{
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "weave-net", "namespace": "kube-system"},
        "spec": {"selector": {"matchLabels": {"name": "weave-net"}}, "template": {
            "metadata": {"labels": {"name": "weave-net"}},
            "spec": {"containers": [{"name": "weave",
                                     "image": "weaveworks/weave-kube:2.8.1"}]}}}}]))
    (snap / "configmaps.yaml").unlink()
    line = assert_user_error(["generate", "--from", snap, "--out", tmp_path / "o"],
                             capsys=capsys)
    assert "CNI" in line


def test_unreadable_kubeconfig(tmp_path, capsys):
    missing = tmp_path / "nope" / "config"
    assert_user_error(["generate", "--kubeconfig", missing, "--out", tmp_path / "o"],
                      str(missing), capsys=capsys)
    garbage = tmp_path / "config"
    garbage.write_text("this: [is not a kubeconfig\n")
    assert_user_error(["generate", "--kubeconfig", garbage, "--out", tmp_path / "o"],
                      str(garbage), capsys=capsys)


def test_dirty_output_repo(snap, tmp_path, capsys):
    out = tmp_path / "o"
    write_repo(out, make_commits(), input_digest="d1")  # any earlier output
    (out / "README.md").write_text("edited\n")
    assert_user_error(["generate", "--from", snap, "--out", out],
                      str(out), "uncommitted", "README.md", capsys=capsys)


def test_output_dir_not_a_repo(snap, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine\n")
    assert_user_error(["generate", "--from", snap, "--out", out], str(out),
                      "not a git repository", capsys=capsys)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_output_inside_snapshot(snap, capsys):
    assert_user_error(["generate", "--from", snap, "--out", snap / "out"],
                      str(snap / "out"), "inside the snapshot directory", capsys=capsys)
    assert not (snap / "out").exists()


def test_lint_missing_dir(tmp_path, capsys):
    assert_user_error(["lint", tmp_path / "missing"], "missing", "not a directory", capsys=capsys)


BAD_SELECTOR_GNP = {
    "apiVersion": "crd.projectcalico.org/v1", "kind": "GlobalNetworkPolicy",
    "metadata": {"name": "default.bad-selector"},
    "spec": {"tier": "default", "order": 10, "selector": "app == 'web'",
             "ingress": [{"action": "Allow", "source": {"selector": "app == 'x' && (tier"}}]}}


def test_invalid_selector_names_file_object_field_and_position(snap, tmp_path, capsys):
    (snap / "bad-policy.yaml").write_text(dump(BAD_SELECTOR_GNP))
    line = assert_user_error(["generate", "--from", snap, "--out", tmp_path / "o"],
                             "bad-policy.yaml", "GlobalNetworkPolicy", "bad-selector",
                             "spec.ingress[0].source.selector", "position", capsys=capsys)
    assert not (tmp_path / "o").exists()


def test_invalid_port_range_names_the_field(snap, tmp_path, capsys):
    gnp = {**BAD_SELECTOR_GNP, "metadata": {"name": "default.bad-port"},
           "spec": {"selector": "app == 'web'", "ingress": [
               {"action": "Allow", "protocol": "TCP", "destination": {"ports": ["90:80"]}}]}}
    (snap / "bad-port.yaml").write_text(dump(gnp))
    assert_user_error(["generate", "--from", snap, "--out", tmp_path / "o"],
                      "bad-port.yaml", "bad-port", "spec.ingress[0].destination.ports",
                      capsys=capsys)
