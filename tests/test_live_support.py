"""Helpers (no tests) for the live-reader tests: a stand-in API server loaded with a snapshot,
a kubeconfig.

The server is tests/fakekube.py, a stand-in for kube-apiserver (discovery, paged lists, custom
objects, 403s); it is not a real cluster.
"""
from __future__ import annotations

from pathlib import Path

from fakekube import DEFAULT_RESOURCES, FakeKube

from generator.yamlio import load_paths

TOKEN = "test-token-e8"


def resources(calico: str | None = "crd") -> list:
    """Server resources: calico "crd" (crd.projectcalico.org/v1 only, the usual Canal/Calico
    install), "both" (plus the Calico API server's projectcalico.org/v3) or None (Flannel)."""
    out = []
    for r in DEFAULT_RESOURCES:
        if r.group == "projectcalico.org" and calico != "both":
            continue
        if r.group == "crd.projectcalico.org" and calico is None:
            continue
        if r.group == "operator.tigera.io" and calico is None:
            continue
        out.append(r)
    return out


def load_into(kube: FakeKube, paths) -> list[dict]:
    """Add every object of a snapshot to the server; returns the objects added."""
    added = []
    for item in load_paths([str(p) for p in paths]):
        kube.add(item.obj)
        added.append(item.obj)
    return added


def write_kubeconfig(path: Path, server: str, *, context: str = "kind-canal",
                     token: str = TOKEN) -> Path:
    path.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: stand-in
  cluster:
    server: "{server}"
users:
- name: tester
  user:
    token: "{token}"
contexts:
- name: {context}
  context:
    cluster: stand-in
    user: tester
current-context: {context}
""")
    return path
