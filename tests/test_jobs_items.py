"""The generated Jobs, RBAC, ConfigMap and probe DaemonSet: Pod Security "restricted", no
wildcard RBAC, unique names, and least privilege checked by replaying the runner against the
stand-in API server with the very arguments the Jobs carry."""
from __future__ import annotations

import ast
import io
import subprocess
import sys
from pathlib import Path

import pytest

from fakekube import CILIUM_CIDR, FakeKube, MigrationCluster, node, pdb, pod
from generator import jobs
from generator.inventory.model import Cidr, Inventory, Node, SourceCNI
from generator.jobs import rbac, spec
from generator.plan.model import Options, Plan, Tunnel, Wave
from generator.render.model import STEP_GATE, STEP_SETUP, STEP_WORK, Item
from generator.runner import checks, migrate
from generator.yamlio import Loaded, dump_all

NS = "cni-migration"


def make_inventory() -> Inventory:
    nodes = [Node(name=f"w{i}", labels={}, internal_ip=f"172.18.0.{i}",
                  addresses=(f"172.18.0.{i}",), pod_cidrs=(f"10.244.{i}.0/24",),
                  control_plane=False, zone=None, ready=True) for i in range(1, 4)]
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet",
          "metadata": {"name": "canal", "namespace": "kube-system"},
          "spec": {"selector": {"matchLabels": {"k8s-app": "canal"}}}}
    cni = SourceCNI(kind="canal", encapsulation="vxlan", tunnel_port=8472,
                    namespace="kube-system", daemonsets=["kube-system/canal"],
                    deployments=["kube-system/calico-kube-controllers"], evidence=[])
    return Inventory(source="test", objects=[Loaded(ds, "daemonsets.yaml", 0, 1)], nodes=nodes,
                     namespaces=[], pods=[], service_accounts=[], services=[], pdbs=[], cni=cni,
                     cidrs=[Cidr("10.244.0.0/16", "ConfigMap canal net-conf.json", "flannel")],
                     service_cidr="10.96.0.0/12", cluster_name="test", policy_objects=[],
                     digest="abc")


def make_plan(digest: str = "digest-1", **opts) -> Plan:
    waves = [Wave(0, "preflight", "preflight", [], [], "low", 5, "nothing"),
             Wave(1, "nodes-01", "canary", [], [], "medium", 10, "revert", nodes=["w1"]),
             Wave(2, "nodes-02", "batch", [], [], "medium", 10, "revert", nodes=["w2", "w3"])]
    return Plan(options=Options(**opts), cluster_name="test", source_cni="canal",
                cilium_pod_cidr=CILIUM_CIDR, cidr_reason="test",
                tunnel=Tunnel("vxlan", 8473, "test"), waves=waves, input_digest=digest)


def all_items(plan: Plan, inv: Inventory) -> list[Item]:
    out = jobs.common_items(plan) + jobs.preflight_items(plan, inv) + \
        jobs.post_install_items(plan, inv) + jobs.final_items(plan, inv) + \
        jobs.removal_items(plan, inv)
    for w in plan.waves:
        out += jobs.node_wave_items(plan, inv, w) + jobs.rollback_items(plan, inv, w)
    return out


def pod_specs(obj: dict) -> list[dict]:
    if obj["kind"] == "Pod":
        return [obj["spec"]]
    if obj["kind"] in ("Job", "DaemonSet", "Deployment"):
        return [obj["spec"]["template"]["spec"]]
    return []


def assert_restricted(ps: dict, what: str) -> None:
    """Pod Security Standards, "restricted" profile (latest)."""
    psc = ps.get("securityContext") or {}
    assert not ps.get("hostNetwork") and not ps.get("hostPID") and not ps.get("hostIPC"), what
    for v in ps.get("volumes") or []:
        allowed = {"name", "configMap", "emptyDir", "projected", "secret", "downwardAPI",
                   "persistentVolumeClaim", "ephemeral", "csi"}
        assert set(v) <= allowed, f"{what}: volume {v}"
    for c in (ps.get("initContainers") or []) + ps["containers"]:
        sc = c.get("securityContext") or {}
        run_as_non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        assert run_as_non_root is True, what
        assert sc.get("runAsUser", psc.get("runAsUser")) not in (None, 0), what
        assert sc.get("allowPrivilegeEscalation") is False, what
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], what
        assert not sc.get("capabilities", {}).get("add"), what
        assert not sc.get("privileged"), what
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        assert seccomp in ("RuntimeDefault", "Localhost"), what
        assert sc.get("readOnlyRootFilesystem") is True, what
        assert not any(p.get("hostPort") for p in c.get("ports") or []), what
        assert any(m["mountPath"] == "/tmp" for m in c.get("volumeMounts") or []), what


@pytest.fixture
def plan():
    return make_plan()


@pytest.fixture
def inv():
    return make_inventory()


def test_every_pod_is_restricted(plan, inv):
    objs = [i.obj for i in all_items(plan, inv)]
    specs = [(f"{o['kind']} {o['metadata']['name']}", s) for o in objs for s in pod_specs(o)]
    check = migrate.check_pod_manifest(migrate.Config(nodes=["w1"], cilium_cidr=CILIUM_CIDR),
                                       "w1", "cni-migrate-check-w1")
    specs.append(("runner check pod", check["spec"]))
    assert len(specs) >= 8
    for what, s in specs:
        assert_restricted(s, what)
    # no exception is needed, so none is declared
    assert not any("cni-migrate.io/pss-exception" in (o["metadata"].get("annotations") or {})
                   for o in objs)
    ns = next(o for o in objs if o["kind"] == "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_rbac_has_no_wildcards_no_secrets_and_one_account_per_kind(plan, inv):
    objs = [i.obj for i in all_items(plan, inv)]
    roles = [o for o in objs if o["kind"] in ("Role", "ClusterRole")]
    assert roles
    for r in roles:
        for rule in r["rules"]:
            for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(key, []), (r["metadata"]["name"], rule)
            assert not {"secrets", "nodes/proxy", "pods/exec", "serviceaccounts/token"} & \
                set(rule["resources"])
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
    accounts = {o["metadata"]["name"] for o in objs if o["kind"] == "ServiceAccount"}
    assert accounts == {spec.service_account(k) for k in rbac.KINDS}
    for o in objs:
        if o["kind"] == "Job":
            assert o["spec"]["template"]["spec"]["serviceAccountName"] in accounts
        if o["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            assert o["subjects"][0]["namespace"] == NS
            assert o["roleRef"]["name"] == o["subjects"][0]["name"]
    # gate Jobs that only read probe pods get no cluster-wide rights at all
    assert not any(o["kind"] == "ClusterRole" and o["metadata"]["name"] == "cni-migrate-validate"
                   for o in objs)


def test_jobs_are_one_shot_gates_with_unique_names(plan, inv):
    items = all_items(plan, inv)
    job_items = [i for i in items if i.obj["kind"] == "Job"]
    names = [i.obj["metadata"]["name"] for i in job_items]
    assert len(names) == len(set(names))
    for i in job_items:
        s = i.obj["spec"]
        assert "ttlSecondsAfterFinished" not in s
        assert 0 <= s["backoffLimit"] <= 3 and s["activeDeadlineSeconds"] > 0
        assert len(i.obj["metadata"]["name"]) <= 63
        assert i.filename and i.filename.endswith(".yaml")
    w1 = plan.wave("nodes-01")
    runner, gate = jobs.node_wave_items(plan, inv, w1)
    assert (runner.step, gate.step) == (STEP_WORK, STEP_GATE)
    assert runner.obj["metadata"]["name"].startswith("cni-migrate-nodes-01-")
    # the runner never runs on a node it drains
    terms = runner.obj["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchFields"][0] == {"key": "metadata.name", "operator": "NotIn",
                                          "values": ["w1"]}
    # a new input gives new names (Jobs are immutable; an old completed Job must not gate)
    other = jobs.node_wave_items(make_plan("digest-2"), inv, w1)[0]
    assert other.obj["metadata"]["name"] != runner.obj["metadata"]["name"]
    assert jobs.node_wave_items(plan, inv, plan.wave("preflight")) == []
    assert all(i.step == STEP_SETUP for i in jobs.common_items(plan))


def test_output_is_deterministic_and_images_configurable(inv):
    a = dump_all(i.obj for i in all_items(make_plan(), inv))
    b = dump_all(i.obj for i in all_items(make_plan(), inv))
    assert a == b
    pinned = "registry.local/python@sha256:" + "0" * 64
    p = make_plan(images={"runner": pinned, "probe": "registry.local/agnhost:2.53",
                          "kubectl": "x"})
    images = {c["image"] for i in all_items(p, inv) for s in pod_specs(i.obj)
              for c in s["containers"]}
    assert images == {pinned, "registry.local/agnhost:2.53"}
    runner = jobs.node_wave_items(p, inv, p.wave("nodes-01"))[0].obj
    args = runner["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--check-image") + 1] == pinned


def test_configmap_carries_stdlib_only_runner(plan):
    cm = next(i.obj for i in jobs.common_items(plan) if i.obj["kind"] == "ConfigMap")
    assert set(cm["data"]) == {"kubeapi.py", "migrate.py", "checks.py"}
    local = {name[:-3] for name in cm["data"]}
    for name, text in cm["data"].items():
        for n in ast.walk(ast.parse(text)):
            mods = [a.name for a in n.names] if isinstance(n, ast.Import) else \
                [n.module] if isinstance(n, ast.ImportFrom) and n.module and not n.level else []
            for m in mods:
                top = m.split(".")[0]
                assert top in sys.stdlib_module_names or top in local, f"{name} imports {m}"


# --- least privilege, by replay -----------------------------------------------------------------

def request_to_rbac(method: str, path: str, query: dict):
    """(group, resource, namespace, name, verb) of an API request; None for non-resource URLs."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"]:
        group, rest = parts[1], parts[3:]
    else:
        return None
    ns = ""
    if rest[0] == "namespaces" and len(rest) > 2:
        ns, rest = rest[1], rest[2:]
    resource, name = rest[0], rest[1] if len(rest) > 1 else ""
    if len(rest) > 2:
        resource += "/" + rest[2]
    verb = {"GET": "get" if name else "list", "POST": "create", "PATCH": "patch",
            "PUT": "update", "DELETE": "delete"}[method]
    if resource.endswith("/eviction"):
        name = ""  # the eviction names the pod in the path; RBAC checks pods/eviction create
    return group, resource, ns, name, verb


def allowed(kind: str, req) -> bool:
    group, resource, ns, name, verb = req

    def ok(rule):
        return (group in rule["apiGroups"] and resource in rule["resources"]
                and verb in rule["verbs"]
                and (not rule.get("resourceNames") or name in rule["resourceNames"]))
    if any(ok(r) for r in rbac.CLUSTER_RULES[kind]):
        return True
    return any(ok(r) for where, rules in rbac.NAMESPACE_RULES.get(kind, [])
               if (where or NS) == ns for r in rules)


def job_args(item: Item) -> tuple[str, list[str]]:
    c = item.obj["spec"]["template"]["spec"]["containers"][0]
    return c["command"][1].rsplit("/", 1)[1], list(c["args"])


def assert_all_allowed(kube: FakeKube, kind: str, start: int) -> set:
    used = set()
    for method, path, query in kube.requests[start:]:
        req = request_to_rbac(method, path, query)
        if req is None:
            continue
        assert allowed(kind, req), f"{kind} Job needs {req} but its Role does not grant it"
        used.add((req[0], req[1], req[4]))
    return used


def test_node_runner_uses_only_granted_verbs(plan, inv):
    with FakeKube() as kube:
        c = MigrationCluster(kube, nodes=("w1", "w2", "w3"))
        c.add_app("web-1", "w1", labels={"app": "web"})
        c.add_app("ds-w1", "w1", owner="DaemonSet")
        kube.add(pdb("web", "default", {"app": "web"}, 1))
        item = jobs.node_wave_items(plan, inv, plan.wave("nodes-01"))[0]
        script, args = job_args(item)
        assert script == "migrate.py"
        out = io.StringIO()
        rc = migrate.main([*args, "--api", kube.url, "--namespace", NS, "--poll", "0.005"],
                          out=out)
        assert rc == 0, out.getvalue()
        used = assert_all_allowed(kube, "nodes", 0)
        back, back_gate = jobs.rollback_items(plan, inv, plan.wave("nodes-01"))
        assert (back.step, back_gate.step) == (STEP_WORK, STEP_GATE)
        assert job_args(back_gate)[1][-2:] == ["--expect", "old"]
        script, args = job_args(back)
        assert "--reverse" in args and back.obj["spec"]["template"]["spec"][
            "serviceAccountName"] == spec.service_account("nodes")
        start = len(kube.requests)
        rc = migrate.main([*args, "--api", kube.url, "--namespace", NS, "--poll", "0.005"],
                          out=out)
        assert rc == 0, out.getvalue()
        used |= assert_all_allowed(kube, "nodes", start)
        # a blocked drain reads PodDisruptionBudgets to name the one that blocks
        c.add_app("db-0", "w2", labels={"app": "db"}, owner="StatefulSet")
        kube.add(pdb("db", "default", {"app": "db"}, 0))
        script, args = job_args(jobs.node_wave_items(plan, inv, plan.wave("nodes-02"))[0])
        start = len(kube.requests)
        rc = migrate.main([*args, "--api", kube.url, "--namespace", NS, "--poll", "0.005",
                           "--evict-timeout", "0.05"], out=out)
        assert rc == 1 and "PodDisruptionBudget default/db" in out.getvalue()
        used |= assert_all_allowed(kube, "nodes", start)
    # and every granted verb is used: nothing granted "just in case"
    granted = {(g, r, v) for rule in rbac.CLUSTER_RULES["nodes"] for g in rule["apiGroups"]
               for r in rule["resources"] for v in rule["verbs"]}
    granted |= {(g, r, v) for _, rules in rbac.NAMESPACE_RULES["nodes"] for rule in rules
                for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    assert used == granted


def _seed_for_checks(kube: FakeKube) -> None:
    for i in range(1, 4):
        kube.add(node(f"w{i}"))
        kube.add(pod(f"canal-{i}", "kube-system", node_name=f"w{i}", host_network=True,
                     labels={"k8s-app": "canal"}, owner_kind="DaemonSet"))
    kube.add(pod("probe-1", NS, node_name="w1", ip="127.0.0.2", owner_kind="DaemonSet",
                 labels={"app.kubernetes.io/name": "cni-migrate-probe"}))
    kube.add(pdb("web", "default", {"app": "web"}, 1))


@pytest.mark.parametrize("phase", ["preflight", "post-install", "batch", "final", "removal"])
def test_check_jobs_use_only_granted_verbs(plan, inv, phase):
    item = {"preflight": lambda: jobs.preflight_items(plan, inv)[0],
            "post-install": lambda: jobs.post_install_items(plan, inv)[0],
            "batch": lambda: jobs.node_wave_items(plan, inv, plan.wave("nodes-01"))[1],
            "final": lambda: jobs.final_items(plan, inv)[0],
            "removal": lambda: jobs.removal_items(plan, inv)[0]}[phase]()
    script, args = job_args(item)
    assert script == "checks.py" and args[0] == phase
    kind = item.obj["spec"]["template"]["spec"]["serviceAccountName"].removeprefix("cni-migrate-")
    with FakeKube() as kube:
        _seed_for_checks(kube)
        checks.main([*args, "--api", kube.url, "--attempts", "1", "--probe-port", "9"],
                    out=io.StringIO(), sleep=lambda s: None, resolver=lambda n: ["10.96.0.1"])
        used = assert_all_allowed(kube, kind, 0)
    assert used, "the check made no API call"


def test_scripts_run_from_the_configmap_as_plain_files(plan, inv, tmp_path):
    """What the Job does: python /scripts/migrate.py <args>, the files mounted from the
    ConfigMap, no package around them."""
    cm = next(i.obj for i in jobs.common_items(plan) if i.obj["kind"] == "ConfigMap")
    for name, text in cm["data"].items():
        (tmp_path / name).write_text(text)
    with FakeKube() as kube:
        MigrationCluster(kube, nodes=("w1", "w2", "w3"))
        script, args = job_args(jobs.node_wave_items(plan, inv, plan.wave("nodes-01"))[0])
        job = jobs.node_wave_items(plan, inv, plan.wave("nodes-01"))[0].obj
        env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0][
            "env"] if "value" in e}
        env["HOME"] = str(tmp_path)
        # -P: the script's directory is not put on sys.path for it (the scripts cope)
        proc = subprocess.run(
            [sys.executable, "-P", str(tmp_path / script), *args, "--api", kube.url,
             "--namespace", NS, "--poll", "0.005"],
            capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert '"result": "ok"' in proc.stdout
        assert kube.obj("nodes", "w1")["metadata"]["annotations"]["cni-migrate.io/state"] == "done"
        proc = subprocess.run([sys.executable, "-P", str(tmp_path / "checks.py"), "final",
                               "--cilium-cidr", CILIUM_CIDR, "--api", kube.url],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path,
                              env=env)
        # no cilium-config in this cluster: the gate fails, with a report
        assert proc.returncode == 1 and "FAIL policy-enforcement" in proc.stdout
        assert not list(Path(tmp_path).glob("__pycache__"))


def test_project_lint_finds_nothing(plan, inv):
    """The project's own tree linter (generator/lint.py) agrees: restricted, RBAC, images."""
    from generator.lint import lint_object
    objs = [i.obj for i in all_items(plan, inv)]
    objs.append(migrate.check_pod_manifest(
        migrate.Config(nodes=["w1"], cilium_cidr=CILIUM_CIDR), "w1", "cni-migrate-check-w1"))
    findings = [f for o in objs
                for f in lint_object(Loaded(o, "x.yaml", 0, 1), set(plan.options.images.values()))]
    assert findings == []


def test_objects_pass_strict_schema_validation(plan, inv):
    """Unknown fields, wrong types and missing required fields rejected, as with kubectl's
    strict field validation (tests/schemas.py, models of the kubernetes package)."""
    from schemas import problems
    objs = [i.obj for i in all_items(plan, inv)]
    objs.append(migrate.check_pod_manifest(
        migrate.Config(nodes=["w1"], cilium_cidr=CILIUM_CIDR), "w1", "cni-migrate-check-w1"))
    found = [f"{o['kind']} {o['metadata']['name']}: {p}" for o in objs for p in problems(o)]
    assert found == []


def test_every_workload_selects_its_own_pods():
    """The API server refuses a workload whose selector does not match its template's labels
    (the probe DaemonSet once carried a name label that labels() overwrote), and a Service that
    selects no pod serves nothing."""
    plan, inv = make_plan(), make_inventory()
    objs = [i.obj for i in all_items(plan, inv)]
    templates = {}
    for o in objs:
        sel = (o.get("spec") or {}).get("selector")
        if o["kind"] in ("DaemonSet", "Deployment", "StatefulSet") or (
                o["kind"] == "Job" and sel):
            labels = o["spec"]["template"]["metadata"]["labels"]
            assert sel["matchLabels"].items() <= labels.items(), o["metadata"]["name"]
            templates[o["metadata"]["name"]] = labels
    svc = next(o for o in objs if o["kind"] == "Service")
    assert any(svc["spec"]["selector"].items() <= t.items() for t in templates.values())


FAKE_KUBECTL = """#!/bin/sh
# answers every call with the error in $FAKE_ANSWER (exit 1), or succeeds when it is empty
if [ -n "$FAKE_ANSWER" ]; then echo "$FAKE_ANSWER" >&2; exit 1; fi
echo ok
"""


@pytest.mark.parametrize("answer,want_rc", [
    ('Error from server (NotFound): ciliumnodeconfigs.cilium.io "cilium-default" not found', 0),
    ('Error from server (Forbidden): ciliumnodeconfigs.cilium.io "cilium-default" is forbidden: '
     'User "system:serviceaccount:cni-migration:x" cannot get resource "ciliumnodeconfigs"', 2),
])
def test_the_nodeconfig_removal_gate_takes_a_refusal_for_a_failure_not_for_gone(
        tmp_path, answer, want_rc):
    """`while kubectl get <config>` once read a 403 as "the CiliumNodeConfig is gone" and passed
    the gate. Only NotFound ends the wait now; any other error fails the Job."""
    from generator.jobs.kubectl import nodeconfig_removed_gate_items
    job = next(i.obj for i in nodeconfig_removed_gate_items(make_plan()) if i.obj["kind"] == "Job")
    c = job["spec"]["template"]["spec"]["containers"][0]
    script = c["command"][-1] if c["command"][0] == "/bin/sh" else c["args"][-1]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(FAKE_KUBECTL)
    (bin_dir / "kubectl").chmod(0o755)
    # the rollout-status line after the loop must still run when the object is gone: it does
    # not, with FAKE_ANSWER set, so cut the script after the loop
    loop = script.split("\nkubectl ")[0]
    r = subprocess.run(["/bin/sh", "-ec", loop], capture_output=True, text=True, timeout=20,
                       env={"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_ANSWER": answer})
    assert r.returncode == want_rc, r.stderr
    if want_rc:
        assert "forbidden" in r.stderr


def test_the_nodeconfig_gate_fails_when_it_cannot_list_nodes(tmp_path):
    """`kubectl get nodes ... | wc -l` counted 0 when the list was refused (sh has no pipefail)
    and passed the gate."""
    from generator.jobs.kubectl import nodeconfig_gate_items
    job = next(i.obj for i in nodeconfig_gate_items(make_plan()) if i.obj["kind"] == "Job")
    script = job["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text("""#!/bin/sh
case "$*" in *" nodes "*) echo 'Error from server (Forbidden): nodes is forbidden' >&2; exit 1;;
esac
echo ok
""")
    (bin_dir / "kubectl").chmod(0o755)
    r = subprocess.run(["/bin/sh", "-ec", script], capture_output=True, text=True, timeout=20,
                       env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    assert r.returncode != 0 and "forbidden" in r.stderr, (r.returncode, r.stdout, r.stderr)
