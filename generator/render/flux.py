"""Flux wiring (design/gitops.md).

- bootstrap/: the GitRepository source, a root Kustomization that keeps bootstrap/ itself in
  sync, and one Kustomization per wave step (waves/NN-key/sK-name), chained by dependsOn, with
  wait: true (Jobs must Complete), a timeout, prune: true. Flux has no order inside one
  Kustomization, hence one per step where a wave has several.
- Node partial manifests: kustomize.toolkit.fluxcd.io/prune: disabled + ssa: Merge.
- Jobs: kustomize.toolkit.fluxcd.io/force: Enabled (Jobs are immutable).
- Cilium: HelmRepository + HelmRelease with valuesFrom the ConfigMap generated from
  cilium/values.yaml (cilium/kustomization.yaml), so final-values is a diff of that one file. The
  HelmRelease is never pruned: reverting a commit must not uninstall the CNI.
"""
from __future__ import annotations

from ..plan.model import Plan
from .overlays import load_overlay

PRUNE = "kustomize.toolkit.fluxcd.io/prune"
SSA = "kustomize.toolkit.fluxcd.io/ssa"
FORCE = "kustomize.toolkit.fluxcd.io/force"
SOURCE_NAME = "cni-migration"
ROOT_NAME = "cni-migration"
VALUES_CONFIGMAP = "cilium-values"
CILIUM_NAMESPACE = "kube-system"


def annotate(obj: dict) -> dict:
    kind = obj.get("kind")
    extra = {}
    if kind == "Node":
        extra = {PRUNE: "disabled", SSA: "Merge"}
    elif kind == "Job":
        extra = {FORCE: "Enabled"}
    elif kind in ("HelmRelease", "HelmRepository"):
        extra = {PRUNE: "disabled"}
    if not extra:
        return obj
    # shallow copies down to the annotations, as argocd.annotate does; obj is never changed
    meta = dict(obj.get("metadata", {}))
    ann = dict(meta.get("annotations", {}))
    ann.update(extra)
    meta["annotations"] = dict(sorted(ann.items()))
    obj = dict(obj)
    obj["metadata"] = meta
    return obj


def git_repository(plan: Plan) -> dict:
    o = plan.options
    obj = load_overlay("flux/gitrepository.yaml")
    obj["metadata"].update({"name": SOURCE_NAME, "namespace": o.flux_namespace})
    obj["spec"]["url"] = o.repo_url
    obj["spec"]["ref"] = {"branch": o.repo_revision}
    return obj


def kustomization(plan: Plan, name: str, path: str, depends_on: str | None,
                  timeout_minutes: int, *, wait: bool = True) -> dict:
    obj = load_overlay("flux/kustomization-wave.yaml")
    obj["metadata"].update({"name": name, "namespace": plan.options.flux_namespace})
    spec = obj["spec"]
    spec["path"] = path
    spec["timeout"] = f"{timeout_minutes}m"
    spec["wait"] = wait
    spec["sourceRef"]["name"] = SOURCE_NAME
    if depends_on:
        # insert dependsOn right after interval for readability; key order is otherwise kept
        out = {}
        for k, v in spec.items():
            out[k] = v
            if k == "interval":
                out["dependsOn"] = [{"name": depends_on}]
        obj["spec"] = out
    return obj


def root_kustomization(plan: Plan) -> dict:
    """Keeps bootstrap/ (the source and the per-step Kustomizations) in sync: each commit adds
    the Kustomizations of its wave here. Not waiting: the children wait for themselves."""
    return kustomization(plan, ROOT_NAME, "./bootstrap", None, 5, wait=False)


def helm_repository(plan: Plan) -> dict:
    obj = load_overlay("flux/helmrepository.yaml")
    obj["metadata"]["namespace"] = CILIUM_NAMESPACE
    obj["spec"]["url"] = plan.options.helm_repo_url
    return annotate(obj)


def helm_release(plan: Plan, chart_version: str) -> dict:
    obj = load_overlay("flux/helmrelease.yaml")
    obj["metadata"]["namespace"] = CILIUM_NAMESPACE
    obj["spec"]["chart"]["spec"]["version"] = chart_version
    obj["spec"]["valuesFrom"] = [{"kind": "ConfigMap", "name": VALUES_CONFIGMAP,
                                  "valuesKey": "values.yaml"}]
    return annotate(obj)


def cilium_kustomization() -> dict:
    """cilium/kustomization.yaml: the values ConfigMap (fixed name: the HelmRelease names it;
    labelled so helm-controller reconciles when it changes) plus the Helm objects."""
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": CILIUM_NAMESPACE,
        "resources": ["helmrepository.yaml", "helmrelease.yaml"],
        "configMapGenerator": [{
            "name": VALUES_CONFIGMAP,
            "files": ["values.yaml"],
            # never pruned either: a HelmRelease left without its values would stop reconciling
            "options": {"disableNameSuffixHash": True,
                        "labels": {"reconcile.fluxcd.io/watch": "Enabled"},
                        "annotations": {PRUNE: "disabled"}},
        }],
    }
