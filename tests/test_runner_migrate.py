"""The per-node runner against the stand-in API server, for what a real server cannot be made to
show on demand: timeouts, a check pod that fails, a pod that comes back with an old address, a
Cilium config left on a node, refusals. The success path, the PDB block, the resume after a
kill and the rollback run against the real control plane: tests/e2e/test_e2e_runner.py."""
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



def test_node_cordoned_by_someone_else_stays_cordoned(kube):
    Cluster(kube)
    kube.obj("nodes", "w1")["spec"]["unschedulable"] = True
    runner, out = make_runner(kube, ["w1"])
    assert runner.run() == 0, out.getvalue()
    assert kube.obj("nodes", "w1")["spec"]["unschedulable"] is True
    assert "left cordoned" in out.getvalue()



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
