"""The runner and the checks against a real API server, each with its own least-privilege identity.

The bundled example is loaded (its Nodes without podCIDR, so kwok hands out addresses by the
node's CNI), with a simulated Cilium: an agent DaemonSet and operator Deployment whose pods kwok
runs, and CniSim (e2e/podexec.py), which moves a node to Cilium addresses when its agent pod is
re-created with the migration label. The migration's namespace, ServiceAccounts, Roles and
ClusterRoles are applied exactly as generated; each Job's command runs as a process with a token
minted for the Job's ServiceAccount (TokenRequest), the way its pod would run it. The per-node
check pod the runner creates is run for real by PodExec.

Then: a forward batch, a PodDisruptionBudget with no disruption left (status kept by the real
disruption controller), a run killed mid-batch and resumed, the rollback branch's reverse run,
and every verb of every generated Role taken away in turn.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from e2e.podexec import CNI_LABEL, mint_token, run_spec
from generator.cli import main
from harness import ROOT, load_example, unload

EXAMPLE = ROOT / "examples" / "kind-canal"
SHARED_CRDS = ROOT.parent / "shared" / "cilium" / "crds"
NS = "cni-migration"
LABEL = "io.cilium.migration/cilium-default"
ANN = "cni-migrate.io/"
FAST = ("--poll", "0.2")               # the runner's polling, shortened for the test


# --- the cluster under migration -----------------------------------------------------------

def cilium_objects() -> list[dict]:
    """A stand-in for the Cilium chart's workloads: kwok runs their pods; only their names,
    labels and readiness matter to the runner and the checks."""
    tmpl = lambda labels, host: {"metadata": {"labels": labels}, "spec": {
        "hostNetwork": host, "tolerations": [{"operator": "Exists"}],
        "containers": [{"name": "agent", "image": "quay.io/cilium/cilium:v1.19.6"}]}}
    return [
        {"apiVersion": "apps/v1", "kind": "DaemonSet",
         "metadata": {"name": "cilium", "namespace": "kube-system", "labels": {"k8s-app": "cilium"}},
         "spec": {"selector": {"matchLabels": {"k8s-app": "cilium"}},
                  "template": tmpl({"k8s-app": "cilium"}, True)}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "cilium-operator", "namespace": "kube-system",
                      "labels": {"io.cilium/app": "operator"}},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"io.cilium/app": "operator"}},
                  "template": tmpl({"io.cilium/app": "operator"}, True)}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "cilium-config", "namespace": "kube-system"},
         "data": {"enable-policy": "default", "cni-exclusive": "false"}},
    ]


def tree_docs(root: Path) -> list[dict]:
    out = []
    for f in sorted(root.rglob("*.yaml")):
        if f.name != "kustomization.yaml":
            out += [d for d in yaml.safe_load_all(f.read_text()) if isinstance(d, dict)]
    return out


class Migration:
    def __init__(self, kube, repo: Path, docs: list[dict]):
        self.kube = kube
        self.repo = repo
        self.docs = docs

    def job(self, prefix: str, docs: list[dict] | None = None) -> dict:
        found = [d for d in (docs or self.docs) if d.get("kind") == "Job"
                 and d["metadata"]["name"].startswith(prefix)]
        assert len(found) == 1, (prefix, [d["metadata"]["name"] for d in found])
        return found[0]

    def run(self, job: dict, *extra: str, token: str | None = None,
            timeout: float = 300) -> tuple[int, str]:
        spec = job["spec"]["template"]["spec"]
        return run_spec(self.kube.cluster, self.kube.api, job["metadata"]["namespace"], spec,
                        extra_args=extra, sa_token=token, timeout=timeout)

    def node(self, name: str) -> dict:
        return self.kube.api.get(f"/api/v1/nodes/{name}")

    def pods_on(self, name: str) -> list[dict]:
        return self.kube.api.list("/api/v1/pods", field_selector=f"spec.nodeName={name}")

    def reset(self, name: str) -> None:
        """The node as before any migration: no label, no progress, schedulable, old CNI."""
        n = self.node(name)
        anns = {k: None for k in n["metadata"].get("annotations", {}) if k.startswith(ANN)}
        self.kube.api.patch(f"/api/v1/nodes/{name}", {
            "metadata": {"labels": {LABEL: None, CNI_LABEL: "old"}, "annotations": anns or None},
            "spec": {"unschedulable": None}})


@pytest.fixture(scope="module")
def migration(kube, tmp_path_factory) -> Migration:
    loaded = load_example(kube, EXAMPLE, pod_cidrs=False, pod_security=False)
    kube.apply("\n---\n".join(json.dumps(o) for o in cilium_objects()))
    wait_running(kube, "kube-system", "k8s-app=cilium", 4)
    repo = tmp_path_factory.mktemp("repo") / "out"
    assert main(["generate", "--from", str(EXAMPLE), "--out", str(repo)]) == 0
    docs = tree_docs(repo / "waves")
    # the migration's identities exactly as generated (and its namespace and scripts)
    setup = [d for d in docs if d["kind"] in ("Namespace", "ServiceAccount", "ClusterRole",
                                              "ClusterRoleBinding", "Role", "RoleBinding")
             or (d["kind"] == "ConfigMap" and d["metadata"]["name"] == "cni-migrate-runner")]
    setup.sort(key=lambda d: d["kind"] != "Namespace")
    kube.apply(yaml.safe_dump_all(setup))
    # the CiliumNodeConfig CRD (the operator registers it in a real cluster); v2 is stored
    # by every supported version's CRD, so the wave tests can still step through 1.16-1.19
    kube.apply((SHARED_CRDS / "by-version" / "v1.19.4" / "v2" / "ciliumnodeconfigs.yaml")
               .read_text())
    kube.wait_established()
    yield Migration(kube, repo, docs)
    kube.kubectl("delete", "namespace", NS, "--wait=false")
    kube.wait_gone("/api/v1/namespaces", [NS])
    for o in cilium_objects():
        kube.kubectl("delete", o["kind"].lower(), o["metadata"]["name"], "-n", "kube-system",
                     "--ignore-not-found")
    unload(kube, loaded)


def wait_running(kube, ns: str, selector: str, n: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        pods = [p for p in kube.api.list(f"/api/v1/namespaces/{ns}/pods", label_selector=selector)
                if (p.get("status") or {}).get("phase") == "Running"
                and not p["metadata"].get("deletionTimestamp")]
        if len(pods) >= n:
            return pods
        assert time.monotonic() < deadline, f"{len(pods)}/{n} {selector} pods Running in {ns}"
        time.sleep(0.2)


def app_pods(m: Migration, node: str) -> list[dict]:
    """Pods on the node that the migration must move to Cilium addresses."""
    return [p for p in m.pods_on(node) if not p["spec"].get("hostNetwork")
            and (p.get("status") or {}).get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")]


def pinned_app(m: Migration, name: str, node: str, *, pdb_min: int | None = None) -> None:
    """A Deployment pinned to one node (and a PodDisruptionBudget on it if asked)."""
    ns = "shop"
    objs = [{"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": name, "namespace": ns},
             "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                      "template": {"metadata": {"labels": {"app": name}}, "spec": {
                          "nodeSelector": {"kubernetes.io/hostname": node},
                          "securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                              "seccompProfile": {"type": "RuntimeDefault"}},
                          "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                                          "securityContext": {
                                              "allowPrivilegeEscalation": False,
                                              "capabilities": {"drop": ["ALL"]}}}]}}}}]
    if pdb_min is not None:
        objs.append({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                     "metadata": {"name": name, "namespace": ns},
                     "spec": {"minAvailable": pdb_min, "selector": {"matchLabels": {"app": name}}}})
    m.kube.apply(yaml.safe_dump_all(objs))
    wait_running(m.kube, ns, f"app={name}", 1)
    if pdb_min is not None:      # the real disruption controller's verdict
        deadline = time.monotonic() + 30
        while True:
            st = m.kube.api.get(f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/{name}")
            if (st.get("status") or {}).get("observedGeneration") and \
                    st["status"].get("disruptionsAllowed") == 0 and \
                    st["status"].get("currentHealthy") == 1:
                break
            assert time.monotonic() < deadline, st.get("status")
            time.sleep(0.2)


def drop_app(m: Migration, name: str) -> None:
    m.kube.kubectl("delete", "-n", "shop", "deployment", name, "--ignore-not-found")
    m.kube.kubectl("delete", "-n", "shop", "pdb", name, "--ignore-not-found")


# --- scenarios -----------------------------------------------------------------------------

def test_forward_batch_moves_the_canary_node_to_cilium(migration):
    m = migration
    node = "kind-canal-worker"
    pinned_app(m, "canary-app", node)
    before = {p["metadata"]["name"] for p in app_pods(m, node)}
    assert before and all(p["status"]["podIP"].startswith("10.244.") for p in app_pods(m, node))
    job = m.job("cni-migrate-nodes-01-")
    rc, out = m.run(job, *FAST)
    assert rc == 0, out
    n = m.node(node)
    assert n["metadata"]["labels"][LABEL] == "true"
    assert n["metadata"]["labels"][CNI_LABEL] == "cilium"     # the agent restarted with it
    assert n["metadata"]["annotations"][ANN + "state"] == "done"
    assert not n["spec"].get("unschedulable")
    # every pod still on the node has a Cilium address; the evicted ones were re-created
    after = app_pods(m, node)
    assert after and all(p["status"]["podIP"].startswith("10.245.") for p in after), \
        [(p["metadata"]["name"], p["status"]["podIP"]) for p in after]
    assert not before & {p["metadata"]["name"] for p in after}
    # the check pod ran (the real script, against the real API server) and was removed
    assert "reached the API server" in m.kube.pods.logs[f"{NS}/cni-migrate-check-{node}"]
    assert m.kube.api.get_or_none(f"/api/v1/namespaces/{NS}/pods/cni-migrate-check-{node}") \
        is None
    summary = json.loads(out.strip().splitlines()[-1])["cni-migrate-batch"]
    assert summary["nodes"][0]["status"] == "done"
    drop_app(m, "canary-app")


def test_pdb_with_no_disruption_left_blocks_and_names_it(migration):
    m = migration
    node = "kind-canal-worker2"
    pinned_app(m, "quorum", node, pdb_min=1)
    try:
        rc, out = m.run(m.job("cni-migrate-nodes-02-"), *FAST, "--evict-timeout", "3")
        assert rc != 0
        assert "PodDisruptionBudget shop/quorum" in out, out
        n = m.node(node)
        assert n["spec"].get("unschedulable") is True          # left cordoned, as documented
        assert n["metadata"]["annotations"][ANN + "state"] == "failed"
        assert "shop/quorum" in n["metadata"]["annotations"][ANN + "error"]
        assert [p["metadata"]["name"] for p in app_pods(m, node)
                if p["metadata"]["labels"].get("app") == "quorum"]   # nothing was evicted
    finally:
        drop_app(m, "quorum")
        m.reset(node)


def test_a_run_killed_mid_batch_resumes(migration):
    m = migration
    a, b = "kind-canal-worker2", "kind-canal-worker3"
    pinned_app(m, "slow", b, pdb_min=1)        # holds the batch on its second node
    job = m.job("cni-migrate-nodes-02-")
    spec = job["spec"]["template"]["spec"]
    cmd = [*spec["containers"][0]["command"], *spec["containers"][0]["args"], "--node", b, *FAST]
    # start it as the Job would, then kill it (as a node drain or OOM would kill the pod) while
    # its drain waits on the budget, once the other pods are evicted. (Killed during an eviction
    # call, the API server may have counted the disruption in the budget without deleting the
    # pod: the budget then allows nothing until the disruption controller expires the entry,
    # about 2 minutes, which the resumed run would wait out.)
    proc = start(m, job, cmd[1:])
    deadline = time.monotonic() + 120

    def blocked_on_budget() -> bool:
        if m.node(b)["metadata"].get("annotations", {}).get(ANN + "step") != "drain":
            return False
        left = [p for p in app_pods(m, b) if not any(
            r.get("kind") == "DaemonSet" for r in p["metadata"].get("ownerReferences") or [])]
        return [p["metadata"]["labels"].get("app") for p in left] == ["slow"]

    while not blocked_on_budget():
        assert proc.poll() is None, proc.communicate()[0]
        if time.monotonic() > deadline:
            proc.kill()
            budgets = {x["metadata"]["name"]: (x.get("status") or {}).get("disruptionsAllowed")
                       for x in m.kube.api.list("/apis/policy/v1/poddisruptionbudgets")}
            pytest.fail(f"never blocked on {b}'s budget:\n{proc.communicate()[0]}\n"
                        f"disruptions allowed: {budgets}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert m.node(a)["metadata"]["annotations"][ANN + "state"] == "done"
    assert m.node(b)["metadata"]["annotations"][ANN + "state"] == "in-progress"
    drop_app(m, "slow")                       # the budget is relaxed; the Job's retry runs
    rc, out = m.run(job, "--node", b, *FAST)
    assert rc == 0, out
    assert f"node {a}: already done" in out and f"node {b}: label" in out, out
    summary = json.loads(out.strip().splitlines()[-1])["cni-migrate-batch"]
    assert [x["status"] for x in summary["nodes"]] == ["skipped", "done"]
    for n in (a, b):
        assert m.node(n)["metadata"]["annotations"][ANN + "state"] == "done"
        assert all(p["status"]["podIP"].startswith("10.245.") for p in app_pods(m, n))


def start(m: Migration, job: dict, args: list[str]) -> subprocess.Popen:
    from e2e.podexec import mount, pod_env, sa_folder
    spec = job["spec"]["template"]["spec"]
    token = mint_token(m.kube.api, NS, spec["serviceAccountName"])
    argv = mount(m.kube.cluster, m.kube.api, NS, spec, spec["containers"][0],
                 [sys.executable, *args])
    return subprocess.Popen(argv, env=pod_env(m.kube.cluster, sa_folder(m.kube.cluster, token, NS),
                                              {"POD_NAMESPACE": NS}),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_the_rollback_branch_restores_the_node(migration):
    m = migration
    node = "kind-canal-worker"
    if m.node(node)["metadata"]["labels"].get(LABEL) != "true":   # run alone: migrate it first
        assert m.run(m.job("cni-migrate-nodes-01-"), *FAST)[0] == 0
    rollback = tree_docs_at(m.repo, "rollback/wave-03")
    job = m.job("cni-migrate-rollback-nodes-01-", rollback)
    assert "--reverse" in job["spec"]["template"]["spec"]["containers"][0]["args"]
    pinned_app(m, "back", node)
    rc, out = m.run(job, *FAST)
    assert rc == 0, out
    n = m.node(node)
    assert LABEL not in n["metadata"]["labels"]
    assert n["metadata"]["labels"][CNI_LABEL] == "old"
    assert n["metadata"]["annotations"][ANN + "state"] == "rolled-back"
    assert not n["spec"].get("unschedulable")
    pods = app_pods(m, node)
    assert pods and all(p["status"]["podIP"].startswith("10.244.") for p in pods), \
        [(p["metadata"]["name"], p["status"]["podIP"]) for p in pods]
    drop_app(m, "back")
    m.reset(node)


def tree_docs_at(repo: Path, ref: str) -> list[dict]:
    files = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "--name-only", ref, "waves"],
                           capture_output=True, text=True, check=True).stdout.split()
    out = []
    for f in files:
        if f.endswith(".yaml") and not f.endswith("kustomization.yaml"):
            text = subprocess.run(["git", "-C", str(repo), "show", f"{ref}:{f}"],
                                  capture_output=True, text=True, check=True).stdout
            out += [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    return out


# --- least privilege, the other way round ----------------------------------------------------

KUBECTL_JOBS = ("cni-migrate-calico-fix", "cni-migrate-cilium-restart",
                "cni-migrate-old-cni-removal", "cni-migrate-nodeconfig-check",
                "cni-migrate-nodeconfig-removal-check")
# Verbs the kubectl Jobs keep although kubectl 1.36 (the cluster's, here) did not use them in
# these runs: the Jobs run the pinned kubectl image (bitnami/kubectl:1.31 by default), whose
# `rollout status` lists the object by name before watching it, and `delete --wait` reads and
# watches an object that finalizers keep after the delete (background deletion here is
# immediate). Any other verb no run needs fails the test.
KUBECTL_VERSION_VERBS = [
    "cni-migrate-calico-fix: Role cni-migrate-calico-fix list daemonsets",
    "cni-migrate-cilium-restart: Role cni-migrate-cilium-restart list daemonsets",
    "cni-migrate-cilium-restart: Role cni-migrate-cilium-restart list deployments",
    "cni-migrate-nodeconfig-removal-check: Role cni-migrate-nodeconfig-removal-check list "
    "daemonsets",
] + [f"cni-migrate-old-cni-removal: Role cni-migrate-old-cni-removal {v} {r}"
     for r in ("daemonsets", "deployments") for v in ("get", "list", "watch")]


def can(kube, sa: str, rule_res: str, verb: str, group: str, namespace: str | None,
        name: str | None = None) -> bool:
    resource, _, sub = rule_res.partition("/")
    attrs = {"verb": verb, "group": group, "resource": resource, "subresource": sub}
    if namespace:
        attrs["namespace"] = namespace
    if name:
        attrs["name"] = name
    r = kube.api.create("/apis/authorization.k8s.io/v1/subjectaccessreviews", {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": f"system:serviceaccount:{NS}:{sa}",
                 "groups": ["system:serviceaccounts", f"system:serviceaccounts:{NS}",
                            "system:authenticated"],
                 "resourceAttributes": attrs}})
    return bool(r["status"].get("allowed"))


def settle(kube, sa, res, verb, group, ns, name, want: bool) -> None:
    """The RBAC authorizer reads Roles from a cache: wait until it agrees with what we wrote."""
    deadline = time.monotonic() + 20
    while can(kube, sa, res, verb, group, ns, name) != want:
        assert time.monotonic() < deadline, f"RBAC never saw {sa} {verb} {res} = {want}"
        time.sleep(0.1)


def scenarios(m: Migration) -> dict[str, list]:
    """For each Job identity: the runs that use every one of its verbs. Each entry is
    (description, prepare(migration) or None, job, extra args).

    Not here: cni-migrate-validate (checks.py batch). Its checks dial the probe pods' and the
    probe Service's addresses, which kwok's pods do not serve and which this machine must not
    send traffic to (only loopback is ours); test_validate_role_grants_exactly_what_it_reads
    checks its Role with SubjectAccessReviews instead."""
    fwd_node, pdb_node = "kind-canal-worker3", "kind-canal-worker2"

    def forward(m: Migration):
        m.reset(fwd_node)
        drop_app(m, "quorum")
        pinned_app(m, "evictee", fwd_node)

    def blocked(m: Migration):
        m.reset(pdb_node)
        pinned_app(m, "quorum", pdb_node, pdb_min=1)

    return {
        "cni-migrate-nodes": [
            ("forward batch", forward, m.job("cni-migrate-nodes-03-"), FAST),
            ("drain blocked by a PodDisruptionBudget", blocked, m.job("cni-migrate-nodes-02-"),
             (*FAST, "--evict-timeout", "2")),
        ],
        "cni-migrate-preflight": [("preflight", None, m.job("cni-migrate-check-preflight-"), ())],
        "cni-migrate-post-install": [("post-install", None,
                                      m.job("cni-migrate-check-post-install-"),
                                      ("--settle-seconds", "0"))],
        "cni-migrate-final": [("final", None, m.job("cni-migrate-check-final-values-"), ())],
        # the kubectl image's Jobs (their shell scripts, with the cluster's kubectl)
        "cni-migrate-calico-fix": [("pin Calico's address autodetection", restore_canal,
                                    m.job("cni-migrate-calico-fix-"), ())],
        "cni-migrate-cilium-restart": [("restart Cilium with the final values", restore_cilium,
                                        m.job("cni-migrate-cilium-restart-"), ())],
        "cni-migrate-nodeconfig-check": [("the CiliumNodeConfig exists, no node labelled",
                                          nodeconfig_present, m.job("cni-migrate-nodeconfig-check-"),
                                          ())],
        "cni-migrate-nodeconfig-removal-check": [
            ("the CiliumNodeConfig is gone, agents Ready", nodeconfig_gone,
             m.job("cni-migrate-nodeconfig-removal-check-"), ())],
        # last: it removes the old CNI
        "cni-migrate-removal": [("removal", None, m.job("cni-migrate-check-old-cni-removal-"),
                                 ())],
        "cni-migrate-old-cni-removal": [("remove the old CNI", restore_canal,
                                         m.job("cni-migrate-old-cni-removal-"), ())],
    }


def node_config(m: Migration) -> dict:
    """As wave 02 adds it (wave 09 removes it again, so the final tree has none)."""
    log = subprocess.run(["git", "-C", str(m.repo), "log", "--format=%H %s"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    sha = next(line.split()[0] for line in log if " wave 02:" in f" {line.split(' ', 1)[1]}")
    return next(d for d in tree_docs_at(m.repo, sha) if d["kind"] == "CiliumNodeConfig")


def nodeconfig_present(m: Migration) -> None:
    """Wave 02 applied (the config selects no node yet), no node labelled."""
    m.kube.apply(json.dumps(node_config(m)))
    m.kube.kubectl("label", "nodes", "--all", f"{LABEL}-")


def nodeconfig_gone(m: Migration) -> None:
    """Wave 09 pruned the CiliumNodeConfig."""
    c = node_config(m)
    m.kube.kubectl("delete", "ciliumnodeconfigs.cilium.io", c["metadata"]["name"], "-n",
                   c["metadata"]["namespace"], "--ignore-not-found")


def restore_cilium(m: Migration) -> None:
    """Cilium's workloads as installed (a restart Job of an earlier run changed them)."""
    for o in cilium_objects():
        m.kube.kubectl("replace", "-f", "-", stdin=json.dumps(o))
    wait_running(m.kube, "kube-system", "k8s-app=cilium", 4)


def restore_canal(m: Migration) -> None:
    """Put back what the old-CNI removal Job deleted (the Canal DaemonSet and controllers)."""
    from harness import clean, exported_objects
    objs = [clean(o) for o in exported_objects(EXAMPLE)
            if o["kind"] in ("DaemonSet", "Deployment") and o["metadata"]["name"] in
            ("canal", "calico-kube-controllers")]
    for o in objs:       # replaced whole: `kubectl set env` of an earlier run is undone too
        verb = "replace" if m.kube.kubectl("get", o["kind"].lower(), o["metadata"]["name"], "-n",
                                           "kube-system", check=False).returncode == 0 \
            else "create"
        m.kube.kubectl(verb, "-f", "-", stdin=json.dumps(o))
    for o in objs:
        wait_running(m.kube, "kube-system", ",".join(
            f"{k}={v}" for k, v in o["spec"]["selector"]["matchLabels"].items()),
            4 if o["kind"] == "DaemonSet" else 1)


def roles_of(m: Migration, sa: str) -> list[dict]:
    """The generated Roles and ClusterRoles bound to the ServiceAccount."""
    bound = {(d["roleRef"]["kind"], d["metadata"].get("namespace"), d["roleRef"]["name"])
             for d in m.docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")
             and any(s.get("name") == sa for s in d.get("subjects") or [])}
    return [d for d in m.docs if d["kind"] in ("Role", "ClusterRole")
            and (d["kind"], d["metadata"].get("namespace") if d["kind"] == "Role" else None,
                 d["metadata"]["name"]) in bound]


def test_every_verb_of_every_generated_role_is_needed(migration):
    m = migration
    unneeded, ran = [], []
    for sa, runs in scenarios(m).items():
        roles = roles_of(m, sa)
        assert roles, f"no generated Role or ClusterRole binds {sa}"
        baseline = {}
        for desc, prep, job, extra in runs:
            assert job["spec"]["template"]["spec"]["serviceAccountName"] == sa
            if prep:
                prep(m)
            rc, out = m.run(job, *extra)
            assert "403" not in out and "forbidden" not in out.lower(), f"{sa} {desc}:\n{out}"
            baseline[desc] = rc
        for role in roles:
            ns = role["metadata"].get("namespace")
            for i, rule in enumerate(role["rules"]):
                for verb in rule["verbs"]:
                    for res in rule["resources"]:
                        group = rule["apiGroups"][0]
                        name = (rule.get("resourceNames") or [None])[0]
                        cut = json.loads(json.dumps(role))
                        cut["rules"][i]["verbs"] = [v for v in rule["verbs"] if v != verb]
                        if not cut["rules"][i]["verbs"]:
                            del cut["rules"][i]
                        m.kube.apply(json.dumps(cut))
                        settle(m.kube, sa, res, verb, group, ns, name, False)
                        try:
                            hit = False
                            for desc, prep, job, extra in runs:
                                if prep:
                                    prep(m)
                                rc, out = m.run(job, *extra, timeout=120)
                                if f'cannot {verb} resource "{res}"' in out.replace('\\"', '"'):
                                    # the Python scripts fail on it; kubectl's waits log the
                                    # refused watch and fall back to polling
                                    assert rc != 0 or sa in KUBECTL_JOBS, \
                                        f"{sa} {desc} passed with a 403:\n{out}"
                                    hit = True
                            ran.append(f"{sa}: {role['kind']} {verb} {res}")
                            if not hit:
                                unneeded.append(f"{sa}: {role['kind']} {role['metadata']['name']}"
                                                f" {verb} {res} (rc {rc}: "
                                                f"{' / '.join(out.strip().splitlines()[-2:])})")
                        finally:
                            m.kube.apply(json.dumps(role))
                            settle(m.kube, sa, res, verb, group, ns, name, True)
    drop_app(m, "quorum")
    drop_app(m, "evictee")
    left = sorted(u.split(" (rc")[0] for u in unneeded)
    assert left == sorted(KUBECTL_VERSION_VERBS), (
        "verbs no run needed (remove them from generator/jobs/rbac.py or jobs/kubectl.py):\n"
        + "\n".join(unneeded))
    assert len(ran) >= 20, ran


def test_validate_role_grants_exactly_what_it_reads(migration):
    """checks.py batch reads the probe pods and the probe Service of the migration namespace
    (its dials are not run here, see scenarios()): the real authorizer agrees, and nothing more."""
    k, sa = migration.kube, "cni-migrate-validate"
    assert can(k, sa, "pods", "list", "", NS)
    assert can(k, sa, "services", "get", "", NS, "cni-migrate-probe")
    for res, verb, ns in (("pods", "list", "kube-system"), ("pods", "delete", NS),
                          ("services", "list", NS), ("secrets", "get", NS),
                          ("nodes", "list", None)):
        assert not can(k, sa, res, verb, "", ns), (res, verb, ns)


def test_the_nodeconfig_gates_pass_and_fail_as_their_waves_need(migration):
    m = migration
    check = m.job("cni-migrate-nodeconfig-check-")
    nodeconfig_present(m)
    rc, out = m.run(check)
    assert rc == 0, out
    m.kube.kubectl("label", "node", "kind-canal-worker", f"{LABEL}=true")   # too early
    rc, out = m.run(check)
    assert rc != 0 and "1 node(s) already labelled" in out, out
    m.kube.kubectl("label", "node", "kind-canal-worker", f"{LABEL}-")
    removal = m.job("cni-migrate-nodeconfig-removal-check-")
    nodeconfig_gone(m)
    rc, out = m.run(removal)
    assert rc == 0 and "successfully rolled out" in out, out
