"""render / pipeline.build: full trees per wave for both engines, valid objects, kustomize builds,
engine wiring, the final-values diff, nodeconfig removal, rollback branches, determinism."""
from __future__ import annotations

import difflib
import functools
import subprocess
from pathlib import Path

import pytest
import yaml

from generator.pipeline import build
from generator.plan.model import Options
from generator.render.model import Commit
from schemas import problems
from test_plan_fixture import make_inventory

ENGINES = ("argocd", "flux")


@pytest.fixture(scope="module")
def built():
    """(plan, commits) per (engine, source kind): built once for the module."""
    out = {}
    for engine in ENGINES:
        for kind in ("canal", "calico-operator", "flannel"):
            inv = make_inventory(kind, workers=5, control_planes=1, policies=kind != "flannel")
            out[(engine, kind)] = build(inv, Options(engine=engine, cilium_version="1.18"))
    return out


def write(tree: dict[str, bytes], root: Path) -> Path:
    for path, data in tree.items():
        f = root / path
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(data)
    return root


def kustomize(path: Path) -> list[dict]:
    r = subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, f"kubectl kustomize {path}: {r.stderr}"
    return [d for d in yaml.safe_load_all(r.stdout) if d]


LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.lru_cache(maxsize=None)
def _parse(data: bytes) -> tuple:
    return tuple(d for d in yaml.load_all(data, Loader=LOADER) if d)


def objects_in(tree: dict[str, bytes]) -> list[tuple[str, dict]]:
    """(path, object) for every YAML object in a tree (parsed once per distinct content; the
    objects are shared, so callers must not modify them)."""
    out = []
    for path, data in tree.items():
        if path.endswith(".yaml") and path != "cilium/values.yaml":
            out.extend((path, d) for d in _parse(data))
    return out


@pytest.mark.parametrize("engine", ENGINES)
def test_commit_per_wave_with_full_tree(built, engine):
    plan, commits = built[(engine, "canal")]
    assert len(commits) == len(plan.waves)
    for c, w in zip(commits, plan.waves):
        assert isinstance(c, Commit) and c.wave is w
        assert c.subject == f"wave {w.number:02d}: {w.title}"
        for section in ("Changes:", "Gates", "Risk:", "Rollback:"):
            assert section in c.body
        assert c.tree["pr/wave-%02d.md" % w.number].decode() == c.pr_description
        assert "README.md" in c.tree and any(p.startswith("bootstrap/") for p in c.tree)
        assert any(p.startswith(f"waves/{w.dirname}/") for p in c.tree)
        # the tree is cumulative: every earlier wave's directory is still there
        for earlier in plan.waves[:w.number]:
            assert f"waves/{earlier.dirname}/kustomization.yaml" in c.tree
    assert "cilium/values.yaml" not in commits[0].tree
    assert "cilium/values.yaml" in commits[1].tree


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", ["canal", "calico-operator", "flannel"])
def test_every_object_is_schema_valid(shared, built, engine, kind):
    plan, commits = built[(engine, kind)]
    contents = {}   # distinct file contents: most files repeat in every later tree
    trees = [c.tree for c in commits] + [t for c in commits for t in c.extra_branches.values()]
    for tree in trees:
        for path, data in tree.items():
            if path.endswith(".yaml") and path != "cilium/values.yaml":
                contents.setdefault(data, path)
    found = []
    for data, path in contents.items():
        for obj in _parse(data):
            found += [f"{path}: {p}" for p in problems(obj, plan.options.cilium_version)]
    assert not found, "\n".join(found[:20])


@pytest.mark.parametrize("engine", ENGINES)
def test_kustomize_builds_every_wave_dir(shared, built, tmp_path, engine):
    plan, commits = built[(engine, "canal")]
    nodeconfig = plan.wave("nodeconfig").number
    for c in (commits[nodeconfig], commits[-1]):
        root = write(c.tree, tmp_path / c.wave.dirname)
        # the nodeconfig commit: its own wave (the CiliumNodeConfig is gone from the last tree)
        dirs = [c.wave] if c.wave.number == nodeconfig else plan.waves
        for w in dirs:
            for obj in kustomize(root / "waves" / w.dirname):
                assert not problems(obj, plan.options.cilium_version), problems(obj)
        kustomize(root / "waves")      # what the Argo CD Application builds
        for obj in kustomize(root / "bootstrap"):
            assert not problems(obj, plan.options.cilium_version)
        if engine == "flux":
            cilium = kustomize(root / "cilium")
            kinds = sorted(o["kind"] for o in cilium)
            assert kinds == ["ConfigMap", "HelmRelease", "HelmRepository"]
            cm = next(o for o in cilium if o["kind"] == "ConfigMap")
            assert cm["data"]["values.yaml"] == c.tree["cilium/values.yaml"].decode()
            for o in cilium:   # a revert never uninstalls the CNI or strands its release
                assert o["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/prune"] == \
                    "disabled"
            for obj in cilium:
                assert not problems(obj, plan.options.cilium_version)


def test_argocd_wiring(built):
    plan, commits = built[("argocd", "canal")]
    tree = commits[-1].tree
    objs = objects_in(tree)
    project = next(o for p, o in objs if o.get("kind") == "AppProject")
    allowed = {(r["group"], r["kind"]) for r in project["spec"]["clusterResourceWhitelist"]}
    assert ("", "Node") in allowed and ("cilium.io", "CiliumClusterwideNetworkPolicy") in allowed
    app = next(o for p, o in objs if p == "bootstrap/application-cni-migration.yaml")
    assert app["spec"]["source"]["path"] == "waves"
    assert app["spec"]["syncPolicy"]["automated"]["prune"] is True
    cilium = next(o for p, o in objs if p.endswith("application-cilium.yaml"))
    sources = cilium["spec"]["sources"]
    assert sources[0]["chart"] == "cilium" and sources[0]["targetRevision"] == "1.18.12"
    assert sources[0]["helm"]["valueFiles"] == ["$values/cilium/values.yaml"]
    assert sources[1]["ref"] == "values"
    assert "Prune=false" in cilium["metadata"]["annotations"]["argocd.argoproj.io/sync-options"]
    for path, o in objs:
        if not path.startswith("waves/") or path.endswith("kustomization.yaml"):
            continue
        wave_num = int(path.split("/")[1][:2])
        step = int(path.split("/")[2][1])
        ann = o["metadata"]["annotations"]
        assert ann["argocd.argoproj.io/sync-wave"] == str(wave_num * 10 + step), path
        if o["kind"] == "Node":
            assert ann["argocd.argoproj.io/sync-options"] == \
                "ServerSideApply=true,Prune=false,Delete=false"
        if o["kind"] == "Job":
            assert "ttlSecondsAfterFinished" not in o["spec"]
            assert "argocd.argoproj.io/hook" not in ann   # plain resources, unique names
    # every cluster-scoped kind the migration Application applies is allowed by the project
    cluster_kinds = {"Node", "Namespace", "ClusterRole", "ClusterRoleBinding",
                     "CiliumClusterwideNetworkPolicy", "CiliumCIDRGroup"}
    for path, o in objs:
        if path.startswith("waves/") and o.get("kind") in cluster_kinds:
            group = o["apiVersion"].rpartition("/")[0]
            assert (group, o["kind"]) in allowed, path
    cm = tree["bootstrap/argocd-cm-patch.yaml"].decode()
    assert "CiliumIdentity" in cm and "CiliumIdentity" in tree["README.md"].decode()


def test_flux_wiring(built):
    plan, commits = built[("flux", "canal")]
    tree = commits[-1].tree
    objs = objects_in(tree)
    steps = [o for p, o in objs if p.startswith("bootstrap/steps/")]
    by_name = {o["metadata"]["name"]: o for o in steps}
    # one chain: every step but the first depends on exactly one earlier step
    roots = [o for o in steps if "dependsOn" not in o["spec"]]
    assert len(roots) == 1
    for o in steps:
        spec = o["spec"]
        assert spec["wait"] is True and spec["prune"] is True and spec["timeout"].endswith("m")
        assert spec["sourceRef"] == {"kind": "GitRepository", "name": "cni-migration"}
        assert (Path("/x") / spec["path"]).as_posix().startswith("/x/waves/")
        for dep in spec.get("dependsOn", []):
            assert dep["name"] in by_name
    # the chain visits waves in order
    order, cur = [], roots[0]
    children = {o["spec"]["dependsOn"][0]["name"]: o for o in steps if "dependsOn" in o["spec"]}
    while cur is not None:
        order.append(cur["spec"]["path"])
        cur = children.get(cur["metadata"]["name"])
    assert len(order) == len(steps) and order == sorted(order)
    for path, o in objs:
        ann = (o.get("metadata") or {}).get("annotations") or {}
        if o.get("kind") == "Node":
            assert ann["kustomize.toolkit.fluxcd.io/prune"] == "disabled"
            assert ann["kustomize.toolkit.fluxcd.io/ssa"] == "Merge"
        if o.get("kind") == "Job":
            assert ann["kustomize.toolkit.fluxcd.io/force"] == "Enabled"
        if o.get("kind") == "HelmRelease":
            assert o["spec"]["valuesFrom"][0]["name"] == "cilium-values"
            assert ann["kustomize.toolkit.fluxcd.io/prune"] == "disabled"
    assert "argocd" not in "".join(tree).lower()


@pytest.mark.parametrize("engine", ENGINES)
def test_final_values_commit_changes_three_lines_of_values(built, engine):
    plan, commits = built[(engine, "canal")]
    fv = plan.wave("final-values").number
    before = commits[fv - 1].tree["cilium/values.yaml"].decode().splitlines()
    after = commits[fv].tree["cilium/values.yaml"].decode().splitlines()
    changed = [l for l in difflib.unified_diff(before, after, n=0, lineterm="")
               if l[:1] in "+-" and not l.startswith(("+++", "---"))]
    assert sorted(l[1:].strip() for l in changed if l[0] == "+") == [
        "customConf: false", "policyEnforcementMode: default", "restart: true"]
    assert len(changed) == 6
    assert "policyEnforcementMode: default" in commits[fv].pr_description  # the diff is shown
    for c in commits[:fv]:
        if "cilium/values.yaml" in c.tree:
            assert c.tree["cilium/values.yaml"] == commits[fv - 1].tree["cilium/values.yaml"]


@pytest.mark.parametrize("engine", ENGINES)
def test_nodeconfig_added_then_removed(built, engine):
    plan, commits = built[(engine, "canal")]
    def cncs(c):
        return [o for p, o in objects_in(c.tree) if o.get("kind") == "CiliumNodeConfig"]
    n = plan.wave("nodeconfig").number
    r = plan.wave("nodeconfig-removal").number
    assert cncs(commits[n - 1]) == []
    cnc = cncs(commits[n])
    assert len(cnc) == 1 and cnc[0]["apiVersion"] == "cilium.io/v2"
    assert cnc[0]["metadata"]["namespace"] == "kube-system"
    assert all(isinstance(v, str) for v in cnc[0]["spec"]["defaults"].values())
    assert len(cncs(commits[r - 1])) == 1 and cncs(commits[r]) == []


def test_node_waves_label_nodes_and_have_rollback_branches(built):
    plan, commits = built[("argocd", "canal")]
    for c in commits:
        if not c.wave.nodes:
            assert c.extra_branches == {}
            continue
        d = f"waves/{c.wave.dirname}/"
        nodes = [o for p, o in objects_in(c.tree) if p.startswith(d) and o["kind"] == "Node"]
        assert sorted(o["metadata"]["name"] for o in nodes) == sorted(c.wave.nodes)
        assert all(o["metadata"]["labels"] == {"io.cilium.migration/cilium-default": "true"}
                   for o in nodes)
        (branch, tree), = c.extra_branches.items()
        assert branch == f"rollback/wave-{c.wave.number:02d}"
        back = [o for p, o in objects_in(tree) if p.startswith(d)]
        assert all("labels" not in o["metadata"] for o in back if o["kind"] == "Node")
        assert len([o for o in back if o["kind"] == "Node"]) == len(c.wave.nodes)
        work = [o for p, o in objects_in(tree) if p.startswith(d + "s2-work/") and o["kind"] == "Job"]
        assert work and all("--reverse" in o["spec"]["template"]["spec"]["containers"][0]["args"]
                            for o in work)
        forward = {o["metadata"]["name"] for p, o in objects_in(c.tree) if p.startswith(d)
                   and o["kind"] == "Job"}
        assert forward.isdisjoint(o["metadata"]["name"] for o in back if o["kind"] == "Job")


def test_jobs_unique_and_named_per_wave(built):
    for (engine, kind), (plan, commits) in built.items():
        names = [o["metadata"]["name"] for p, o in objects_in(commits[-1].tree)
                 if o.get("kind") == "Job"]
        assert len(names) == len(set(names)), (engine, kind)


def test_policy_wave_holds_translation_or_says_none(built):
    plan, commits = built[("argocd", "flannel")]
    pw = plan.wave("policies")
    c = commits[pw.number]
    assert "no network policy" in c.body
    plan, commits = built[("argocd", "canal")]
    c = commits[plan.wave("policies").number]
    d = f"waves/{plan.wave('policies').dirname}/"
    objs = [o for p, o in objects_in(c.tree) if p.startswith(d)]
    if "not yet available" not in c.body:
        assert objs, "translation available but no object in the policies wave"


def test_render_is_deterministic():
    inv1 = make_inventory(workers=5, control_planes=1)
    inv2 = make_inventory(workers=5, control_planes=1)
    for engine in ENGINES:
        _, a = build(inv1, Options(engine=engine))
        _, b = build(inv2, Options(engine=engine))
        assert [(c.subject, c.body, c.tree, c.pr_description, c.extra_branches) for c in a] == \
               [(c.subject, c.body, c.tree, c.pr_description, c.extra_branches) for c in b]


def test_readme_has_the_wave_table(built):
    plan, commits = built[("flux", "canal")]
    readme = commits[0].tree["README.md"].decode()
    for w in plan.waves:
        assert f"| {w.key} |" in readme
    assert "**no**" in readme   # the irreversible wave is marked


def test_every_job_has_its_service_account_no_later_than_itself(built):
    for (engine, kind), (plan, commits) in built.items():
        sas: dict[tuple, int] = {}
        jobs = []
        for path, o in objects_in(commits[-1].tree):
            if not path.startswith("waves/") or path.count("/") != 3:
                continue
            order = (int(path.split("/")[1][:2]), int(path.split("/")[2][1]))
            if o["kind"] == "ServiceAccount":
                sas[(o["metadata"]["namespace"], o["metadata"]["name"])] = order
            elif o["kind"] == "Job":
                jobs.append((order, o))
        for order, job in jobs:
            spec = job["spec"]["template"]["spec"]
            key = (job["metadata"]["namespace"], spec["serviceAccountName"])
            assert key in sas and sas[key] <= order, (engine, kind, job["metadata"]["name"])
            images = {c["image"] for c in spec["containers"]}
            assert images <= set(plan.options.images.values()), images
