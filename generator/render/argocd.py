"""Argo CD wiring (design/gitops.md).

- bootstrap/: the AppProject (allows cluster-scoped Node, the migration's RBAC and the Cilium
  kinds) and one Application syncing waves/ (kustomize), auto-sync with prune and retry.
- Inside waves/: argocd.argoproj.io/sync-wave = wave*10 + step on every object, so a later wave
  waits for the Jobs of earlier ones (a Job is Progressing until Complete; Failed is Degraded and
  stops the sync). Jobs are plain resources with unique names and no TTL.
- Node partial manifests: ServerSideApply=true,Prune=false,Delete=false.
- Cilium: a multi-source Application (chart from the Helm repository, values from this repo),
  never pruned nor deleted by the parent.
- argocd-cm resource.exclusions for cilium.io/CiliumIdentity: shipped as a documented snippet
  (bootstrap/argocd-cm-patch.yaml), not applied, because it would replace the user's list.
"""
from __future__ import annotations

from ..plan.model import Plan
from .overlays import load_overlay

SYNC_WAVE = "argocd.argoproj.io/sync-wave"
SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
IN_CLUSTER = "https://kubernetes.default.svc"
NODE_SYNC_OPTIONS = "ServerSideApply=true,Prune=false,Delete=false"
# Cilium's CRDs are registered by the operator at run time: the dry run of a sync that starts
# before they exist must not fail the whole sync.
CR_SYNC_OPTIONS = "SkipDryRunOnMissingResource=true"


def sync_wave(wave_number: int, step: int) -> str:
    return str(wave_number * 10 + step)


def annotate(obj: dict, wave_number: int, step: int) -> dict:
    """A copy of obj with the sync annotations. Only obj, its metadata and annotations are
    copied (keys keep their places; new ones go last); the rest is shared with obj, which is
    never changed: a deep copy of every manifest cost more than dumping it."""
    meta = dict(obj.get("metadata", {}))
    ann = dict(meta.get("annotations", {}))
    ann[SYNC_WAVE] = sync_wave(wave_number, step)
    group = obj.get("apiVersion", "").rpartition("/")[0]
    if obj.get("kind") == "Node":
        ann[SYNC_OPTIONS] = NODE_SYNC_OPTIONS
    elif group == "cilium.io":
        ann.setdefault(SYNC_OPTIONS, CR_SYNC_OPTIONS)
    meta["annotations"] = dict(sorted(ann.items()))
    obj = dict(obj)
    obj["metadata"] = meta
    return obj


def project(plan: Plan) -> dict:
    o = plan.options
    obj = load_overlay("argocd/appproject.yaml")
    obj["metadata"]["namespace"] = o.argocd_namespace
    obj["spec"]["sourceRepos"] = sorted({o.repo_url, o.helm_repo_url})
    # translated policies live in tenant namespaces: every namespace of this cluster
    obj["spec"]["destinations"] = [{"server": IN_CLUSTER, "namespace": "*"}]
    return obj


def waves_application(plan: Plan) -> dict:
    o = plan.options
    obj = load_overlay("argocd/application-waves.yaml")
    obj["metadata"]["namespace"] = o.argocd_namespace
    obj["spec"]["source"].update({"repoURL": o.repo_url, "targetRevision": o.repo_revision})
    obj["spec"]["destination"]["namespace"] = o.namespace
    return obj


def cilium_application(plan: Plan, chart_version: str) -> dict:
    o = plan.options
    obj = load_overlay("argocd/application-cilium.yaml")
    obj["metadata"]["namespace"] = o.argocd_namespace
    chart, values = obj["spec"]["sources"]
    chart.update({"repoURL": o.helm_repo_url, "targetRevision": chart_version})
    values.update({"repoURL": o.repo_url, "targetRevision": o.repo_revision})
    return obj


def argocd_cm_patch(plan: Plan) -> dict:
    obj = load_overlay("argocd/argocd-cm-patch.yaml")
    obj["metadata"]["namespace"] = plan.options.argocd_namespace
    return obj


def bootstrap(plan: Plan) -> dict[str, dict]:
    """bootstrap/ files (path -> object) applied once by hand: kubectl apply -k bootstrap/."""
    return {"appproject.yaml": project(plan), "application-cni-migration.yaml": waves_application(plan)}
