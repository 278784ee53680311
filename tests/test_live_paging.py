"""Paging and raw list responses, against tests/fakekube.py (a STAND-IN API server, not a real
kube-apiserver) made to answer the way a real one does: list items without apiVersion/kind,
managedFields on every object, a continue token that expires mid-list."""
from __future__ import annotations

import copy

import pytest

from fakekube import FakeKube, HttpError, pod
from test_live_support import resources, write_kubeconfig

from generator.errors import UserError
from generator.live.reader import read_cluster


class RealisticKube(FakeKube):
    """Items as a real list returns them; `expire` continue tokens answer 410 Gone once each."""

    expire = 0

    def _list(self, r, ns, query):
        if query.get("continue") and self.expire > 0:
            self.expire -= 1
            raise HttpError(410, "Expired", "The provided continue parameter is too old")
        out = super()._list(r, ns, query)
        items = []
        for item in out["items"]:
            item = copy.deepcopy(item)
            item.pop("apiVersion", None)
            item.pop("kind", None)
            item["metadata"]["managedFields"] = [{"manager": "kubectl", "operation": "Update"}]
            items.append(item)
        return {**out, "items": items}


def _cluster(kube: FakeKube, pods: int) -> None:
    kube.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    for i in range(pods):
        kube.add(pod(f"web-{i:03d}", "shop", node_name="n1", ip=f"10.0.0.{i + 1}"))


def test_items_get_kind_and_lose_server_bookkeeping(tmp_path):
    with RealisticKube(resources(None)) as kube:
        _cluster(kube, 5)
        read = read_cluster(str(write_kubeconfig(tmp_path / "kc", kube.url)), page_size=2)
    pods = read.files["pods.yaml"]
    assert [p["metadata"]["name"] for p in pods] == [f"web-{i:03d}" for i in range(5)]
    assert all(list(p)[:3] == ["apiVersion", "kind", "metadata"] for p in pods)
    assert {(p["apiVersion"], p["kind"]) for p in pods} == {("v1", "Pod")}
    assert not [p for p in pods if {"managedFields", "uid", "resourceVersion"} & set(p["metadata"])]


def test_expired_continue_token_restarts_the_list_once(tmp_path):
    with RealisticKube(resources(None)) as kube:
        _cluster(kube, 7)
        kube.expire = 1
        read = read_cluster(str(write_kubeconfig(tmp_path / "kc", kube.url)), page_size=3)
        pod_pages = [q for _, p, q in kube.requests if p == "/api/v1/pods"]
    assert len(read.files["pods.yaml"]) == 7            # no duplicates from the first attempt
    assert len(pod_pages) == 2 + 3                      # 2 pages then 410, then 3 pages


def test_continue_token_expiring_twice_is_an_error(tmp_path):
    with RealisticKube(resources(None)) as kube:
        _cluster(kube, 7)
        kube.expire = 2
        with pytest.raises(UserError, match="list of pods kept changing while paging"):
            read_cluster(str(write_kubeconfig(tmp_path / "kc", kube.url)), page_size=3)


def test_progress_counts_pages(tmp_path):
    seen = []
    with RealisticKube(resources(None)) as kube:
        _cluster(kube, 5)
        read_cluster(str(write_kubeconfig(tmp_path / "kc", kube.url)), page_size=2,
                     progress=seen.append)
    assert [m for m in seen if m.startswith("reading pods")] == [
        "reading pods", "reading pods: 2", "reading pods: 4", "reading pods: 5"]
