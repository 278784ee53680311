"""The minimal read-only ClusterRole the live reader needs (`snapshot --print-clusterrole`).

Derived from resources.py so the role and the reader cannot drift apart. Only get/list, never
Secrets, never watch.
"""
from __future__ import annotations

from .resources import CALICO_CRD, CALICO_KINDS, CALICO_V3, CORE, TIGERA_OPERATOR

ROLE_NAME = "cni-migrate-reader"
VERBS = ["get", "list"]

# The Calico API server authorises reads of tiered policies through these pseudo-resources
# (Calico docs, "Configure RBAC for tiered policies"), on top of the plain kinds.
CALICO_TIER_PSEUDO = ("tier.globalnetworkpolicies", "tier.networkpolicies")


def clusterrole() -> dict:
    by_group: dict[str, list[str]] = {}
    for r in CORE:
        by_group.setdefault(r.group, []).append(r.plural)
    calico = [plural for plural, _, _ in CALICO_KINDS]
    by_group[CALICO_CRD] = list(calico)
    by_group[CALICO_V3] = calico + list(CALICO_TIER_PSEUDO)
    by_group[TIGERA_OPERATOR.group] = [TIGERA_OPERATOR.plural]
    rules = [{"apiGroups": [group], "resources": sorted(set(plurals)), "verbs": list(VERBS)}
             for group, plurals in sorted(by_group.items())]
    # Discovery: which Calico API the cluster serves. Usually granted to every authenticated
    # user by system:discovery, listed here for clusters that removed that binding.
    rules.append({"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*"], "verbs": ["get"]})
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": ROLE_NAME,
                     "labels": {"app.kubernetes.io/name": "cni-migrate"}},
        "rules": rules,
    }


def clusterrole_yaml() -> str:
    from ..yamlio import dump
    return ("# Read-only access for `cni-migrate snapshot` and --kubeconfig reads.\n"
            "# Bind it with: kubectl create clusterrolebinding cni-migrate-reader "
            f"--clusterrole={ROLE_NAME} --user=<you>\n" + dump(clusterrole()))
