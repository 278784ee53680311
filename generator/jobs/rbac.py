"""Least-privilege RBAC: one ServiceAccount per Job kind, with exactly the verbs its script uses.

No wildcards, no Secrets. Cluster-wide rules go in a ClusterRole; rules that only concern the
migration namespace (creating the per-node check pod, reading probe pods) or one named object
(cilium-config) go in a namespaced Role. Keep these tables in step with generator/runner/: the
tests parse the runner for the API calls it makes and compare.
"""
from __future__ import annotations

from ..plan.model import Plan
from .spec import CILIUM_NAMESPACE, meta, service_account


def _rule(group: str, resources: list[str], verbs: list[str],
          names: list[str] | None = None) -> dict:
    r = {"apiGroups": [group], "resources": resources}
    if names:
        r["resourceNames"] = names
    r["verbs"] = verbs
    return r


# kind -> cluster-wide rules
CLUSTER_RULES: dict[str, list[dict]] = {
    "preflight": [
        _rule("", ["nodes"], ["list"]),
        _rule("apps", ["daemonsets"], ["get"]),
        _rule("policy", ["poddisruptionbudgets"], ["list"]),
    ],
    "post-install": [
        _rule("", ["nodes"], ["list"]),
        _rule("", ["pods"], ["list"]),
        _rule("apps", ["daemonsets"], ["get"]),
        _rule("apps", ["deployments"], ["get"]),
    ],
    "nodes": [
        # check/set the migration label, cordon, record progress annotations
        _rule("", ["nodes"], ["get", "patch"]),
        # find pods on the node, restart the agent, re-create pods with old-CNI addresses
        _rule("", ["pods"], ["get", "list", "delete"]),
        _rule("", ["pods/eviction"], ["create"]),
        # name the PodDisruptionBudget that blocks an eviction
        _rule("policy", ["poddisruptionbudgets"], ["list"]),
    ],
    "validate": [],
    "final": [
        _rule("", ["pods"], ["list"]),
    ],
    "removal": [
        _rule("", ["pods"], ["list"]),
        _rule("apps", ["daemonsets"], ["get"]),
        _rule("apps", ["deployments"], ["get"]),
    ],
}

# kind -> list of (namespace or None for the migration namespace, rules)
NAMESPACE_RULES: dict[str, list[tuple[str | None, list[dict]]]] = {
    "nodes": [(None, [_rule("", ["pods"], ["create"])])],       # the per-node check pod
    "validate": [(None, [_rule("", ["pods"], ["list"]),
                         _rule("", ["services"], ["get"])])],    # probe pods and Service
    "final": [(CILIUM_NAMESPACE, [_rule("", ["configmaps"], ["get"], ["cilium-config"])])],
}

KINDS = tuple(CLUSTER_RULES)


def rbac_items_for(plan: Plan, kind: str) -> list[dict]:
    ns = plan.options.namespace
    sa = service_account(kind)
    subject = [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]
    out: list[dict] = [{
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(sa, kind, ns),
        "automountServiceAccountToken": True,
    }]
    if CLUSTER_RULES[kind]:
        out.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": meta(sa, kind), "rules": CLUSTER_RULES[kind]})
        out.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                    "metadata": meta(sa, kind),
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                "name": sa},
                    "subjects": subject})
    for role_ns, rules in NAMESPACE_RULES.get(kind, []):
        where = role_ns or ns
        out.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                    "metadata": meta(sa, kind, where), "rules": rules})
        out.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": meta(sa, kind, where),
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                "name": sa},
                    "subjects": subject})
    return out


def rbac_items(plan: Plan) -> list[dict]:
    out: list[dict] = []
    for kind in KINDS:
        out.extend(rbac_items_for(plan, kind))
    return out


__all__ = ["CLUSTER_RULES", "NAMESPACE_RULES", "KINDS", "rbac_items", "rbac_items_for"]
