import json

import pytest

from generator.cli import main
from generator.lint import lint_tree
from generator.yamlio import dump_all

SC = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
      "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def job(name="check", image="registry.k8s.io/e2e-test-images/agnhost:2.53", sc=None,
        pod=None, annotations=None):
    meta = {"name": name, "namespace": "cni-migration"}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
            "spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "securityContext": {"runAsNonRoot": True, **(pod or {})},
                "containers": [{"name": "c", "image": image,
                                "securityContext": dict(SC if sc is None else sc)}]}}}}


def write(tmp_path, *objs, name="waves/00-x/objects.yaml"):
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(dump_all(objs))
    return p


def whats(tmp_path):
    return [f.what for f in lint_tree(tmp_path)]


def test_clean_tree(tmp_path):
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "r", "namespace": "cni-migration"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}
    write(tmp_path, job(), role)
    (tmp_path / "README.md").write_text("use the service account token of the Job\n")
    assert lint_tree(tmp_path) == []
    assert main(["lint", str(tmp_path)]) == 0


@pytest.mark.parametrize("change,expected", [
    ({"sc": {**SC, "allowPrivilegeEscalation": True}}, "allowPrivilegeEscalation must be false"),
    ({"sc": {k: v for k, v in SC.items() if k != "capabilities"}}, "capabilities must drop ALL"),
    ({"sc": {**SC, "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}}},
     "adds capabilities NET_ADMIN"),
    ({"sc": {**SC, "privileged": True}}, "container c: privileged"),
    ({"sc": {**SC, "readOnlyRootFilesystem": False}}, "readOnlyRootFilesystem must be true"),
    ({"sc": {k: v for k, v in SC.items() if k != "seccompProfile"}},
     "seccompProfile must be RuntimeDefault"),
    ({"sc": {k: v for k, v in SC.items() if k != "runAsNonRoot"}, "pod": {"runAsNonRoot": False}},
     "runAsNonRoot must be true"),
    ({"pod": {"hostNetwork": True}}, None),  # placed in the pod spec below
    ({"image": "docker.io/library/python:latest"}, "uses :latest"),
    ({"image": "docker.io/library/python"}, "has no tag or digest"),
])
def test_pod_findings(tmp_path, change, expected):
    obj = job(**change)
    if expected is None:  # hostNetwork is a pod spec field, not a security context one
        obj["spec"]["template"]["spec"].update(hostNetwork=True)
        obj["spec"]["template"]["spec"]["securityContext"].pop("hostNetwork")
        expected = "hostNetwork: true"
    write(tmp_path, obj)
    found = lint_tree(tmp_path)
    assert any(expected in f.what for f in found), found
    assert all(f.obj == "Job cni-migration/check" for f in found)
    assert found[0].file == "waves/00-x/objects.yaml:1"


def test_hostpath_and_pss_exception(tmp_path):
    bad = job(name="runner", sc={})
    bad["spec"]["template"]["spec"]["volumes"] = [{"name": "cni", "hostPath": {"path": "/etc"}}]
    write(tmp_path, bad)
    assert "volume cni: hostPath not allowed (restricted)" in whats(tmp_path)
    excepted = job(name="runner", sc={}, annotations={
        "cni-migrate.io/pss-exception": "removes the old CNI's files on the node"})
    excepted["spec"]["template"]["spec"]["volumes"] = bad["spec"]["template"]["spec"]["volumes"]
    write(tmp_path, excepted)
    assert whats(tmp_path) == []
    on_template = job(name="runner", sc={})
    on_template["spec"]["template"]["metadata"] = {
        "annotations": {"cni-migrate.io/pss-exception": "host network needed"}}
    write(tmp_path, on_template)
    assert whats(tmp_path) == []
    no_reason = job(name="runner", sc={}, annotations={"cni-migrate.io/pss-exception": " "})
    write(tmp_path, no_reason)
    assert "cni-migrate.io/pss-exception needs a reason" in whats(tmp_path)


def test_other_workloads_are_checked(tmp_path):
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "d"},
          "spec": {"template": {"spec": {"hostPID": True, "containers": [
              {"name": "x", "image": "a/b:1"}]}}}}
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [
                {"name": "y", "image": "a/b:1", "securityContext": SC}],
                "initContainers": [{"name": "i", "image": "a/b:latest",
                                    "securityContext": SC}]}}}}}}
    write(tmp_path, ds, cron)
    found = {(f.obj, f.what) for f in lint_tree(tmp_path)}
    assert ("DaemonSet d", "hostPID: true") in found
    assert ("CronJob cj", "container i: image a/b:latest uses :latest") in found
    # the CronJob's pod spec (two levels down) is otherwise restricted
    assert [w for o, w in found if o == "CronJob cj"] == [
        "container i: image a/b:latest uses :latest"]


def test_rbac(tmp_path):
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "wide"},
            "rules": [{"apiGroups": ["*"], "resources": ["nodes"], "verbs": ["get"]},
                      {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
                      {"apiGroups": ["apps"], "resources": ["*"], "verbs": ["*"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "b"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "cluster-admin"}, "subjects": []}
    write(tmp_path, role, binding)
    found = whats(tmp_path)
    for expected in ("rules[0]: wildcard in apiGroups", "rules[1]: grants access to secrets",
                     "rules[2]: wildcard in resources", "rules[2]: wildcard in verbs",
                     "binds the built-in ClusterRole cluster-admin (too broad)"):
        assert expected in found


def test_credentials(tmp_path):
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"},
              "stringData": {"x": "y"}}
    repo = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"},
            "data": {"password": "hunter2", "passwordFile": "/etc/pw", "token": "${TOKEN}"}}
    env = job()
    env["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "DB_PASSWORD", "value": "s3cret"},
        {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "t", "key": "k"}}}]
    write(tmp_path, secret, repo, env)
    (tmp_path / "notes.txt").write_text("x\n-----BEGIN RSA PRIVATE KEY-----\nabc\n"
                                        "ghp_" + "a" * 36 + "\n")
    found = [f.line() for f in lint_tree(tmp_path)]
    assert any("Secret n/s: Secret with data committed to git" in f for f in found)
    assert any("ConfigMap cm: data.password holds a literal credential" in f for f in found)
    assert not any("passwordFile" in f or "data.token" in f for f in found)
    assert any("DB_PASSWORD holds a literal credential" in f for f in found)
    assert not any("API_TOKEN" in f for f in found)
    assert "notes.txt:2: private key block" in found
    assert "notes.txt:4: looks like a GitHub token" in found


def test_configured_images(tmp_path):
    state = tmp_path / ".cni-migrate" / "state.json"
    state.parent.mkdir()
    state.write_text(json.dumps({"images": {"probe": "example.org/agnhost:2.53"}}))
    write(tmp_path, job(image="example.org/agnhost:2.53"), job(name="other", image="x/y:1"))
    found = lint_tree(tmp_path)
    assert [(f.obj, f.what) for f in found] == [
        ("Job cni-migration/other",
         "container c: image x/y:1 is not one of the configured images (--image)")]


def test_cli_output_and_exit_codes(tmp_path, capsys):
    write(tmp_path, job(image="x/y:latest"))
    (tmp_path / "broken.yaml").write_text("a: [\n")
    assert main(["lint", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["broken.yaml:2: malformed YAML: did not find expected node content",
                     "waves/00-x/objects.yaml:1: Job cni-migration/check: "
                     "container c: image x/y:latest uses :latest"]
    assert main(["lint", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.strip().endswith("missing: not a directory")


def test_images_in_helm_values(tmp_path):
    (tmp_path / "cilium").mkdir()
    (tmp_path / "cilium" / "values.yaml").write_text(
        "image:\n  repository: quay.io/cilium/cilium\n  tag: latest\n"
        "operator:\n  image: quay.io/cilium/operator\n"
        "hubble:\n  relay:\n    image: quay.io/cilium/hubble-relay:v1.18.3\n")
    assert [(f.file, f.what) for f in lint_tree(tmp_path)] == [
        ("cilium/values.yaml:1", "image.tag: image tag latest"),
        ("cilium/values.yaml:1",
         "operator.image: image quay.io/cilium/operator has no tag or digest (means :latest)")]
