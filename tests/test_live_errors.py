"""Live-read failures become one-line errors (exit 2). The API server here is tests/fakekube.py,
a STAND-IN (http.server in a thread), not a real kube-apiserver; unreachable and silent servers
are plain sockets."""
from __future__ import annotations

import io
import socket

import pytest

from fakekube import FakeKube
from test_live_support import resources, write_kubeconfig

from generator.cli import main
from generator.commands.snapshot import _Progress
from generator.errors import UserError
from generator.live.reader import read_cluster


def run_cli(argv, capsys) -> tuple[int, str]:
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    return rc, err


@pytest.fixture()
def kube():
    with FakeKube(resources("crd")) as k:
        k.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}})
        yield k


def test_forbidden_names_verb_resource_and_the_clusterrole(kube, tmp_path, capsys):
    kube.forbid("list", "pods")
    kc = write_kubeconfig(tmp_path / "kc", kube.url)
    rc, err = run_cli(["snapshot", "--kubeconfig", str(kc), "--out", str(tmp_path / "s")], capsys)
    assert rc == 2 and err.count("\n") == 0
    assert "context kind-canal" in err
    assert "may not list pods in all namespaces" in err
    assert "cni-migrate snapshot --print-clusterrole" in err
    assert not (tmp_path / "s").exists()          # nothing half-written


def test_forbidden_custom_resource(kube, tmp_path):
    kube.forbid("list", "globalnetworkpolicies")
    with pytest.raises(UserError, match=r"list globalnetworkpolicies\.crd\.projectcalico\.org "
                                        r"\(cluster-scoped\)"):
        read_cluster(str(write_kubeconfig(tmp_path / "kc", kube.url)))


def test_forbidden_namespaced_read(kube, tmp_path):
    kube.forbid("list", "daemonsets")
    with pytest.raises(UserError, match=r"list daemonsets\.apps in namespace kube-system"):
        read_cluster(str(write_kubeconfig(tmp_path / "kc", kube.url)))


def test_expired_credentials(kube, tmp_path, capsys):
    kube.require_token("a-different-token")
    kc = write_kubeconfig(tmp_path / "kc", kube.url)
    rc, err = run_cli(["snapshot", "--kubeconfig", str(kc), "--out", str(tmp_path / "s")], capsys)
    assert rc == 2 and "401 Unauthorized" in err and "expired" in err


def test_unreachable_server(tmp_path, capsys):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                     # nothing listens there now
    kc = write_kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{port}")
    rc, err = run_cli(["snapshot", "--kubeconfig", str(kc), "--out", str(tmp_path / "s")],
                      capsys)
    assert rc == 2
    assert f"cannot reach the API server at http://127.0.0.1:{port}" in err


def test_silent_server_times_out(tmp_path, capsys):
    with socket.socket() as s:                    # accepts connections, never answers
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        kc = write_kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{s.getsockname()[1]}")
        rc, err = run_cli(["snapshot", "--kubeconfig", str(kc), "--out", str(tmp_path / "o"),
                           "--timeout", "0.3"], capsys)
    assert rc == 2 and "did not answer" in err and "0.3s" in err


@pytest.mark.parametrize("content, message", [
    (None, "kubeconfig not found"),
    ("clusters: [unclosed", "kubeconfig"),
    ("apiVersion: v1\nkind: Config\ncontexts: []\nclusters: []\nusers: []\n",
     "no current-context"),
])
def test_unusable_kubeconfig(tmp_path, content, message):
    kc = tmp_path / "kubeconfig"
    if content is not None:
        kc.write_text(content)
    with pytest.raises(UserError, match=message) as e:
        read_cluster(str(kc))
    assert str(kc) in str(e.value)


def test_unknown_context(kube, tmp_path):
    kc = write_kubeconfig(tmp_path / "kc", kube.url)
    with pytest.raises(UserError, match=r"no context 'prod' in the kubeconfig \(it has: "
                                        r"kind-canal\)"):
        read_cluster(str(kc), "prod")


def test_out_must_be_empty_or_a_snapshot(kube, tmp_path, capsys):
    kc = write_kubeconfig(tmp_path / "kc", kube.url)
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    rc, err = run_cli(["snapshot", "--kubeconfig", str(kc), "--out", str(out)], capsys)
    assert rc == 2 and "--force" in err and (out / "notes.txt").exists()
    assert main(["snapshot", "--kubeconfig", str(kc), "--out", str(out), "--force"]) == 0
    assert (out / "namespaces.yaml").exists() and not (out / "notes.txt").exists()


def test_progress_only_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True
    quiet, tty = io.StringIO(), Tty()
    for stream in (quiet, tty):
        p = _Progress(stream)
        p("reading pods")
        p.done()
    assert quiet.getvalue() == ""
    assert "reading pods" in tty.getvalue()


def test_tls_failure(kube, tmp_path, capsys):
    """https:// against a server that speaks plain HTTP: the TLS handshake fails."""
    kc = write_kubeconfig(tmp_path / "kc", kube.url.replace("http://", "https://"))
    text = kc.read_text().replace("    server:", "    insecure-skip-tls-verify: true\n    server:")
    kc.write_text(text)
    rc, err = run_cli(["snapshot", "--kubeconfig", str(kc), "--out", str(tmp_path / "s")], capsys)
    assert rc == 2 and err.count("\n") == 0
    assert "TLS error talking to https://127.0.0.1" in err


def test_failing_credential_plugin(kube, tmp_path):
    """An exec plugin (aws, gke-gcloud-auth-plugin...) that cannot run stops the read before
    any request goes out unauthenticated."""
    kc = write_kubeconfig(tmp_path / "kc", kube.url)
    kc.write_text(kc.read_text().replace(
        '    token: "test-token-e8"',
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n"
        "      command: /nonexistent/credential-plugin"))
    with pytest.raises(UserError, match="credential plugin failed.*nonexistent"):
        read_cluster(str(kc))
    assert kube.requests == []
