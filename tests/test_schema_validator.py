"""The test validator itself: accepts real objects, rejects the mistakes it exists to catch."""
import pytest

from schemas import problems, validate


def job(**spec_extra):
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "j", "namespace": "cni-migration", "labels": {"a": "b"}},
        "spec": {"backoffLimit": 2, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "python:3.12-alpine",
                            "resources": {"limits": {"cpu": 1, "memory": "64Mi"}},
                            "securityContext": {"runAsNonRoot": True}}],
        }}, **spec_extra},
    }


def test_core_job_valid(shared):
    validate(job())


def test_core_rejects_unknown_field_wrong_type_and_missing_required(shared):
    bad = job(backofLimit=3)
    assert any("backofLimit: unknown field" in p for p in problems(bad))
    bad = job()
    bad["spec"]["backoffLimit"] = "2"
    assert any("backoffLimit: expected an integer" in p for p in problems(bad))
    bad = job()
    del bad["spec"]["template"]["spec"]["containers"][0]["name"]
    assert any("containers[0].name: required field missing" in p for p in problems(bad))
    bad = job()
    bad["metadata"]["labels"] = {"a": 1}
    assert any("metadata.labels.a: expected a string" in p for p in problems(bad))


def test_core_other_kinds(shared):
    validate({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "labels": {
        "io.cilium.migration/cilium-default": "true"}}})
    validate({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
              "metadata": {"name": "r"},
              "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]})
    assert problems({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})  # no name


@pytest.mark.parametrize("version,api", [("1.16", "cilium.io/v2"), ("1.17", "cilium.io/v2"),
                                         ("1.18", "cilium.io/v2"), ("1.19", "cilium.io/v2"),
                                         ("1.15", "cilium.io/v2alpha1")])
def test_ciliumnodeconfig_by_version(shared, version, api):
    cnc = {"apiVersion": api, "kind": "CiliumNodeConfig",
           "metadata": {"name": "cilium-default", "namespace": "kube-system"},
           "spec": {"nodeSelector": {"matchLabels": {"io.cilium.migration/cilium-default": "true"}},
                    "defaults": {"write-cni-conf-when-ready": "/host/etc/cni/net.d/05-cilium.conflist",
                                 "custom-cni-conf": "false"}}}
    validate(cnc, cilium_version=version)
    unquoted = {**cnc, "spec": {**cnc["spec"], "defaults": {"custom-cni-conf": False}}}
    assert problems(unquoted, cilium_version=version)


def test_cnp_rejects_typo_and_bad_cidr(shared):
    cnp = {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
           "metadata": {"name": "p", "namespace": "default"},
           "spec": {"endpointSelector": {"matchLabels": {"app": "web"}},
                    "ingress": [{"fromCIDR": ["10.0.0.0/8"]}]}}
    validate(cnp)
    typo = {**cnp, "spec": {**cnp["spec"], "ingres": []}}
    assert any("ingres" in p for p in problems(typo))
    bad = {**cnp, "spec": {**cnp["spec"], "ingress": [{"fromCIDR": ["not-a-cidr"]}]}}
    assert problems(bad)


def test_gitops_crds(shared):
    app = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
           "metadata": {"name": "a", "namespace": "argocd"},
           "spec": {"project": "p", "destination": {"server": "https://kubernetes.default.svc"},
                    "source": {"repoURL": "https://x", "path": "waves", "targetRevision": "main"}}}
    validate(app)
    assert problems({**app, "spec": {**app["spec"], "syncPolicy": {"automatd": {}}}})
    ks = {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
          "metadata": {"name": "k", "namespace": "flux-system"},
          "spec": {"interval": "5m", "prune": True, "path": "./waves/00-preflight",
                   "sourceRef": {"kind": "GitRepository", "name": "cni-migration"}}}
    validate(ks)
    assert problems({**ks, "spec": {**ks["spec"], "prune": "yes"}})
    assert problems({"apiVersion": "example.com/v1", "kind": "Nope", "metadata": {"name": "x"}})
