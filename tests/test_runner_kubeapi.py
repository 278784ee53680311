"""The runner's REST client and the stand-in API server it is tested against."""
from __future__ import annotations

import pytest

from fakekube import FakeKube, ips_from, label_match, node, pdb, pod
from generator.runner.kubeapi import ApiError, Client


@pytest.fixture
def kube():
    with FakeKube() as k:
        yield k


def test_list_follows_continue_pages(kube):
    for i in range(7):
        kube.add(node(f"n{i}", labels={"pool": "a" if i % 2 else "b"}))
    c = Client(kube.url)
    names = [n["metadata"]["name"] for n in c.list("/api/v1/nodes", page_size=3)]
    assert names == [f"n{i}" for i in range(7)]
    lists = [q for m, p, q in kube.requests if p == "/api/v1/nodes"]
    assert len(lists) == 3 and lists[0]["limit"] == "3" and "continue" in lists[1]
    assert [n["metadata"]["name"] for n in c.list("/api/v1/nodes", label_selector="pool=a")] \
        == ["n1", "n3", "n5"]


def test_get_create_patch_delete(kube):
    c = Client(kube.url)
    kube.add(node("n1", annotations={"keep": "1", "drop": "2"}))
    assert c.get_or_none("/api/v1/nodes/missing") is None
    with pytest.raises(ApiError) as e:
        c.get("/api/v1/nodes/missing")
    assert e.value.status == 404 and "not found" in e.value.reason
    out = c.patch("/api/v1/nodes/n1", {"metadata": {"annotations": {"drop": None, "new": "3"}},
                                       "spec": {"unschedulable": True}})
    assert out["metadata"]["annotations"] == {"keep": "1", "new": "3"}
    assert kube.obj("nodes", "n1")["spec"]["unschedulable"] is True
    created = c.create("/api/v1/namespaces/x/pods", pod("p", "ignored"))
    assert created["metadata"]["namespace"] == "x" and created["metadata"]["uid"]
    with pytest.raises(ApiError) as e:
        c.create("/api/v1/namespaces/x/pods", pod("p", "x"))
    assert e.value.status == 409
    assert c.delete("/api/v1/namespaces/x/pods/p", grace_seconds=0) is True
    assert c.delete("/api/v1/namespaces/x/pods/p") is False


def test_field_selector_and_eviction(kube):
    c = Client(kube.url)
    kube.add(pod("a", node_name="n1", labels={"app": "a"}))
    kube.add(pod("b", node_name="n2", labels={"app": "b"}))
    kube.add(pdb("pa", "default", {"app": "a"}, 0))
    on_n1 = c.list("/api/v1/pods", field_selector="spec.nodeName=n1")
    assert [p["metadata"]["name"] for p in on_n1] == ["a"]
    with pytest.raises(ApiError) as e:
        c.evict("default", "a")
    assert e.value.status == 429 and "disruption budget" in e.value.reason
    c.evict("default", "b")
    assert kube.obj("pods", "b", "default") is None


def test_forbidden_and_discovery(kube):
    c = Client(kube.url)
    kube.forbid("list", "pods")
    with pytest.raises(ApiError) as e:
        c.list("/api/v1/pods")
    assert e.value.status == 403 and "cannot list" in e.value.reason
    groups = {g["name"] for g in c.get("/apis")["groups"]}
    assert {"crd.projectcalico.org", "projectcalico.org", "policy", "apps"} <= groups
    res = c.get("/apis/crd.projectcalico.org/v1")
    gnp = next(r for r in res["resources"] if r["name"] == "globalnetworkpolicies")
    assert gnp["namespaced"] is False and gnp["kind"] == "GlobalNetworkPolicy"
    core = {r["name"] for r in c.get("/api/v1")["resources"]}
    assert {"pods", "pods/eviction", "nodes"} <= core
    assert c.get("/version")["major"] == "1"


def test_label_selector_syntax():
    labels = {"app": "web", "tier": "front"}
    assert label_match("app=web,tier", labels)
    assert label_match("app in (web, api),!missing", labels)
    assert not label_match("app notin (web)", labels)
    assert not label_match("tier!=front", labels)
    assert label_match("", labels)


def test_in_cluster_client_needs_service_env(monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(RuntimeError):
        Client()
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    c = Client(token="t")
    assert c.base_url == "https://[fd00::1]:443" and c.token == "t"


def test_modelled_controllers(kube):
    """The hooks the runner tests build on: addresses from a CIDR, a deleted pod replaced and
    Ready after N requests, a created pod that finishes after N requests."""
    c = Client(kube.url)
    kube.assign_pod_ips(ips_from("10.100.0.0/24"))
    kube.replace_on_delete(lambda p: p["metadata"]["name"].startswith("agent-"), ready_after=3,
                           ip_for=ips_from("10.100.1.0/24"))
    kube.finish_pods(lambda p: p["metadata"]["name"] == "check", after=2, phase="Failed")
    first = c.create("/api/v1/namespaces/d/pods", pod("check", "d"))
    assert first["status"]["podIP"] == "10.100.0.1"
    assert c.get("/api/v1/namespaces/d/pods/check")["status"]["phase"] == "Running"
    assert c.get("/api/v1/namespaces/d/pods/check")["status"]["phase"] == "Failed"

    kube.add(pod("agent-x", "d", node_name="n1"))
    c.delete("/api/v1/namespaces/d/pods/agent-x")
    new = [p for p in c.list("/api/v1/namespaces/d/pods") if p["metadata"]["name"] != "check"]
    assert len(new) == 1 and new[0]["spec"]["nodeName"] == "n1"
    assert new[0]["status"]["phase"] == "Pending"
    name = new[0]["metadata"]["name"]
    for _ in range(3):
        got = c.get(f"/api/v1/namespaces/d/pods/{name}")
    assert got["status"]["phase"] == "Running" and got["status"]["podIP"] == "10.100.1.1"
    assert any(x["type"] == "Ready" and x["status"] == "True" for x in got["status"]["conditions"])


def test_idempotent_calls_ride_out_server_errors(kube):
    slept = []
    c = Client(kube.url, sleep=slept.append)
    kube.add(node("n1"))
    kube.fail("GET", "/api/v1/nodes/n1", 503, times=2)
    kube.fail("PATCH", "/api/v1/nodes/n1", 500, times=1)
    assert c.get("/api/v1/nodes/n1")["metadata"]["name"] == "n1"
    c.patch("/api/v1/nodes/n1", {"spec": {"unschedulable": True}})
    assert slept == [1, 2, 1]
    kube.fail("GET", "/api/v1/nodes/n1", 503, times=9)
    with pytest.raises(ApiError) as e:
        c.get("/api/v1/nodes/n1")
    assert e.value.status == 503
    kube.fail("POST", "/api/v1/namespaces/d/pods", 503, times=1)   # creates are not retried
    with pytest.raises(ApiError):
        c.create("/api/v1/namespaces/d/pods", pod("p", "d"))
    c.create("/api/v1/namespaces/d/pods", pod("p", "d"))
    with pytest.raises(ApiError) as e:                              # 4xx is an answer
        c.get("/api/v1/nodes/nope")
    assert e.value.status == 404
