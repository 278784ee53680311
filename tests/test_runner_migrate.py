"""The per-node runner against the stand-in API server: success, PDB block, timeouts, resume,
rollback."""
from __future__ import annotations

import io
import json

import pytest

from fakekube import CILIUM_CIDR, LABEL, NS, FakeKube, MigrationCluster as Cluster, pdb
from generator.runner import migrate
from generator.runner.migrate import Config, Runner, in_cidr
from generator.runner.kubeapi import Client


def make_runner(kube, nodes, **kw) -> tuple[Runner, io.StringIO]:
    cfg = Config(nodes=list(nodes), cilium_cidr=CILIUM_CIDR, batch="nodes-01", namespace=NS,
                 poll=0.005, max_backoff=0.02, evict_timeout=kw.pop("evict_timeout", 2),
                 agent_timeout=kw.pop("agent_timeout", 2),
                 check_timeout=kw.pop("check_timeout", 2), **kw)
    out = io.StringIO()
    return Runner(Client(kube.url), cfg, out=out), out


def summary(out: io.StringIO) -> dict:
    for line in out.getvalue().splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            if "cni-migrate-batch" in rec:
                return rec["cni-migrate-batch"]
    raise AssertionError("no batch summary in the log:\n" + out.getvalue())


@pytest.fixture
def kube():
    with FakeKube() as k:
        yield k


def test_batch_success(kube):
    c = Cluster(kube)
    c.add_app("web-1", "w1", labels={"app": "web"})
    c.add_app("goldpinger-w1", "w1", owner="DaemonSet")       # keeps its old IP unless deleted
    c.add_app("web-2", "w2", labels={"app": "web"})
    kube.add(pdb("web", "default", {"app": "web"}, 1))
    runner, out = make_runner(kube, ["w1", "w2"])
    assert runner.run() == 0, out.getvalue()

    for n in ("w1", "w2"):
        node = kube.obj("nodes", n)
        assert node["metadata"]["labels"][LABEL] == "true"
        assert not node["spec"].get("unschedulable")
        ann = node["metadata"]["annotations"]
        assert ann["cni-migrate.io/state"] == "done"
        assert ann["cni-migrate.io/started-at"] <= ann["cni-migrate.io/finished-at"]
        assert "cni-migrate.io/error" not in ann
        # every pod left on the node that is not hostNetwork has a Cilium address
        for p in c.pods_on(n):
            if not p["spec"].get("hostNetwork"):
                assert in_cidr(p["status"].get("podIP"), CILIUM_CIDR), p["metadata"]["name"]
    assert kube.obj("nodes", "w3")["metadata"]["labels"].get(LABEL) is None
    # evicted through the Eviction API (not deleted), DaemonSet pods deleted, not evicted
    evictions = [p for m, p, _ in kube.requests if p.endswith("/eviction")]
    assert evictions == ["/api/v1/namespaces/default/pods/web-1/eviction",
                         "/api/v1/namespaces/default/pods/web-2/eviction"]
    assert kube.obj("pods", "goldpinger-w1", "default") is None
    assert kube.objects("pods", NS) == []                       # check pods cleaned up
    s = summary(out)
    assert s["result"] == "ok" and [r["node"] for r in s["nodes"]] == ["w1", "w2"]
    assert set(s["nodes"][0]["steps"]) == {"label", "cordon", "drain", "restart-agent",
                                           "recreate-pods", "check-pod", "uncordon"}
    assert s["started"] <= s["finished"]


def test_pdb_blocks_names_pdb_and_pod_and_leaves_node_cordoned(kube):
    c = Cluster(kube)
    c.add_app("db-0", "w1", labels={"app": "db"}, owner="StatefulSet")
    kube.add(pdb("db-quorum", "default", {"app": "db"}, 0))
    runner, out = make_runner(kube, ["w1", "w2"], evict_timeout=0.1)
    assert runner.run() == 1
    log = out.getvalue()
    assert "PodDisruptionBudget default/db-quorum" in log and "pod default/db-0" in log
    assert "What to do next:" in log and "re-run this Job" in log
    node = kube.obj("nodes", "w1")
    assert node["spec"]["unschedulable"] is True
    assert node["metadata"]["annotations"]["cni-migrate.io/state"] == "failed"
    assert "db-quorum" in node["metadata"]["annotations"]["cni-migrate.io/error"]
    assert kube.obj("pods", "db-0", "default") is not None     # never deleted by hand
    s = summary(out)
    assert s["result"] == "failed" and s["not_started"] == ["w2"]
    failed = s["nodes"][0]
    assert failed["status"] == "failed" and failed["started"] and failed["finished"]
    assert set(failed["steps"]) == {"label", "cordon"}         # drain did not finish
    # the 429s were retried, with backoff, not once
    assert sum(p.endswith("db-0/eviction") for _, p, _ in kube.requests) >= 3


def test_agent_timeout(kube):
    Cluster(kube, agent_ready_after=10_000)
    runner, out = make_runner(kube, ["w1"], agent_timeout=0.2)
    assert runner.run() == 1
    assert "not Ready after 0.2s" in out.getvalue()
    assert kube.obj("nodes", "w1")["spec"]["unschedulable"] is True


def test_check_pod_failure_keeps_pod_for_logs(kube):
    Cluster(kube, check_phase="Failed")
    runner, out = make_runner(kube, ["w1"])
    assert runner.run() == 1
    assert "could not reach the API server" in out.getvalue()
    assert kube.obj("pods", "cni-migrate-check-w1", NS) is not None


def test_resume_skips_done_node_and_redoes_failed_one(kube):
    c = Cluster(kube)
    c.add_app("db-0", "w2", labels={"app": "db"}, owner="StatefulSet")
    budget = kube.add(pdb("db-quorum", "default", {"app": "db"}, 0))
    runner, out = make_runner(kube, ["w1", "w2", "w3"], evict_timeout=0.1)
    assert runner.run() == 1
    assert kube.obj("nodes", "w1")["metadata"]["annotations"]["cni-migrate.io/state"] == "done"
    first_done = kube.obj("nodes", "w1")["metadata"]["annotations"]["cni-migrate.io/finished-at"]

    budget["status"]["disruptionsAllowed"] = 1                  # the operator made room
    before = len(kube.requests)
    runner, out = make_runner(kube, ["w1", "w2", "w3"])
    assert runner.run() == 0, out.getvalue()
    s = summary(out)
    assert [r["status"] for r in s["nodes"]] == ["skipped", "done", "done"]
    assert "node w1: already done" in out.getvalue()
    # the done node was not touched again: no patch, no pod deletion for w1
    again = kube.requests[before:]
    assert not any(m in ("PATCH", "DELETE") and ("nodes/w1" in p or "cilium-w1" in p)
                   for m, p, _ in again)
    assert kube.obj("nodes", "w1")["metadata"]["annotations"]["cni-migrate.io/finished-at"] \
        == first_done
    for n in ("w2", "w3"):
        assert kube.obj("nodes", n)["metadata"]["annotations"]["cni-migrate.io/state"] == "done"
        assert not kube.obj("nodes", n)["spec"].get("unschedulable")


def test_node_cordoned_by_someone_else_stays_cordoned(kube):
    Cluster(kube)
    kube.obj("nodes", "w1")["spec"]["unschedulable"] = True
    runner, out = make_runner(kube, ["w1"])
    assert runner.run() == 0, out.getvalue()
    assert kube.obj("nodes", "w1")["spec"]["unschedulable"] is True
    assert "left cordoned" in out.getvalue()


def test_rollback_removes_label_and_recreates_pods_on_old_cni(kube):
    c = Cluster(kube)
    c.add_app("goldpinger-w1", "w1", owner="DaemonSet")
    runner, out = make_runner(kube, ["w1"])
    assert runner.run() == 0, out.getvalue()
    assert all(in_cidr(p["status"].get("podIP"), CILIUM_CIDR)
               for p in c.pods_on("w1") if not p["spec"].get("hostNetwork"))

    runner, out = make_runner(kube, ["w1"], reverse=True)
    assert runner.run() == 0, out.getvalue()
    node = kube.obj("nodes", "w1")
    assert LABEL not in node["metadata"]["labels"]
    assert node["metadata"]["annotations"]["cni-migrate.io/state"] == "rolled-back"
    assert not node["spec"].get("unschedulable")
    ds_pods = [p for p in c.pods_on("w1") if not p["spec"].get("hostNetwork")]
    assert ds_pods and all(p["status"]["podIP"].startswith("10.244.") for p in ds_pods)
    # a second reverse run is a no-op
    runner, out = make_runner(kube, ["w1"], reverse=True)
    assert runner.run() == 0 and "already rolled-back" in out.getvalue()


def test_rollback_detects_cilium_config_left_on_node(kube):
    c = Cluster(kube)
    runner, _ = make_runner(kube, ["w1"])
    assert runner.run() == 0
    # model a node where Cilium's CNI config survives the agent restart
    kube.hooks[("delete", "pods")].remove(c._agent_deleted)
    runner, out = make_runner(kube, ["w1"], reverse=True)
    assert runner.run() == 1
    assert "not outside the Cilium pod CIDR" in out.getvalue()
    assert "05-cilium.conflist" in out.getvalue()


def test_missing_node_and_forbidden_api(kube):
    Cluster(kube)
    runner, out = make_runner(kube, ["nope"])
    assert runner.run() == 1 and "node nope does not exist" in out.getvalue()
    kube.forbid("create", "pods/eviction")    # surfaces as an API failure naming RBAC
    kube.add({"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": "x", "namespace": "default",
                           "ownerReferences": [{"kind": "ReplicaSet", "name": "x",
                                                "controller": True}]},
              "spec": {"nodeName": "w1"}, "status": {"phase": "Running"}})
    runner, out = make_runner(kube, ["w1"])
    assert runner.run() == 1
    assert "HTTP 403" in out.getvalue() and "RBAC" in out.getvalue()


def test_main_parses_job_arguments(kube):
    Cluster(kube)
    out = io.StringIO()
    rc = migrate.main(["--api", kube.url, "--node", "w1", "--batch", "nodes-01",
                       "--cilium-cidr", CILIUM_CIDR, "--namespace", NS, "--poll", "0.005",
                       "--agent-timeout", "2", "--check-timeout", "2"], out=out)
    assert rc == 0, out.getvalue()
    assert summary(out)["batch"] == "nodes-01"


def test_bare_pod_stops_the_drain_before_any_eviction(kube):
    c = Cluster(kube)
    c.add_app("web-1", "w1", labels={"app": "web"})
    c.add_app("debug-shell", "w1", owner=None)
    runner, out = make_runner(kube, ["w1"])
    assert runner.run() == 1
    assert "not managed by any controller would be lost: default/debug-shell" in out.getvalue()
    assert not [p for _, p, _ in kube.requests if p.endswith("/eviction")]
    assert kube.obj("pods", "web-1", "default") and kube.obj("pods", "debug-shell", "default")
    assert kube.obj("nodes", "w1")["spec"]["unschedulable"] is True


def test_pod_that_comes_back_with_an_old_address_is_recreated_again(kube):
    c = Cluster(kube, agent_ready_after=0)
    c.add_app("goldpinger-w1", "w1", owner="DaemonSet")
    real, raced = c.ip_for, []

    def racing_ip(p):        # the first replacement raced the agent and got an old address
        if p["metadata"]["name"].startswith("goldpinger") and not raced:
            raced.append(p["metadata"]["name"])
            return "10.244.1.200"
        return real(p)
    c.ip_for = racing_ip
    runner, out = make_runner(kube, ["w1"])
    assert runner.run() == 0, out.getvalue()
    assert raced and f"deleted default/{raced[0]} (10.244.1.200)" in out.getvalue()
    gp = [p for p in c.pods_on("w1") if p["metadata"]["name"].startswith("goldpinger")]
    assert len(gp) == 1 and in_cidr(gp[0]["status"]["podIP"], CILIUM_CIDR)


def test_evicted_pod_that_never_terminates_times_out(kube):
    import copy
    c = Cluster(kube)
    c.add_app("stuck", "w1")

    def finalizer(k, obj):          # model a finalizer: the pod stays, same uid
        if obj["metadata"]["name"] == "stuck":
            k.add(copy.deepcopy(obj))
    kube.on("delete", "pods", finalizer)
    runner, out = make_runner(kube, ["w1"], evict_timeout=0.1)
    assert runner.run() == 1
    assert "step drain: pods still terminating: default/stuck" in out.getvalue()
    assert "finalizers" in out.getvalue()
    assert kube.obj("nodes", "w1")["spec"]["unschedulable"] is True
