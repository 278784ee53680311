"""What the live reader reads: one entry per kind (no kubernetes import here).

The list is the contract with the planner and translator (they read only these kinds) and with
the read-only ClusterRole (rbac.py derives its rules from it). Secrets are never read.
"""
from __future__ import annotations

from dataclasses import dataclass

# Where CNIs install their DaemonSets, controllers and configuration.
CNI_NAMESPACES = ("kube-system", "calico-system", "kube-flannel", "tigera-operator")

# ConfigMaps worth reading in kube-system (the other namespaces above belong to the CNI, so all
# of their ConfigMaps are read). Matching by name keeps unrelated configuration out of the snapshot.
KUBE_SYSTEM_CONFIGMAP_HINTS = ("calico", "canal", "flannel", "tigera", "cni")
KUBE_SYSTEM_CONFIGMAPS = ("kubeadm-config", "kube-proxy", "cilium-config")

CALICO_V3 = "projectcalico.org"          # served by the Calico API server (aggregated)
CALICO_CRD = "crd.projectcalico.org"     # the CRDs Calico stores its objects in


@dataclass(frozen=True)
class Resource:
    group: str                  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool
    typed: str | None = None    # snake name in the typed client (list_<typed>...), None = custom
    namespaces: tuple[str, ...] | None = None   # read only these namespaces (None: all)
    optional: bool = False      # an API the cluster may not serve (Calico, Tigera operator)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """kubectl's resource.group name, e.g. 'daemonsets.apps', 'pods'."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(self, namespace: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace:
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"


# Read in this order: Namespaces first, so namespace-restricted reads skip absent namespaces.
CORE = (
    Resource("", "v1", "namespaces", "Namespace", False, "namespace"),
    Resource("", "v1", "nodes", "Node", False, "node"),
    Resource("", "v1", "pods", "Pod", True, "pod"),
    Resource("", "v1", "serviceaccounts", "ServiceAccount", True, "service_account"),
    Resource("", "v1", "services", "Service", True, "service"),
    Resource("", "v1", "configmaps", "ConfigMap", True, "config_map", CNI_NAMESPACES),
    Resource("apps", "v1", "daemonsets", "DaemonSet", True, "daemon_set", CNI_NAMESPACES),
    Resource("apps", "v1", "deployments", "Deployment", True, "deployment", CNI_NAMESPACES),
    Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True,
             "pod_disruption_budget"),
    Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True,
             "network_policy"),
)

# (plural, kind, namespaced): the same names in projectcalico.org/v3 and crd.projectcalico.org/v1.
CALICO_KINDS = (
    ("tiers", "Tier", False),
    ("globalnetworkpolicies", "GlobalNetworkPolicy", False),
    ("networkpolicies", "NetworkPolicy", True),
    ("globalnetworksets", "GlobalNetworkSet", False),
    ("networksets", "NetworkSet", True),
    ("hostendpoints", "HostEndpoint", False),
    ("ippools", "IPPool", False),
    ("felixconfigurations", "FelixConfiguration", False),
)

TIGERA_OPERATOR = Resource("operator.tigera.io", "v1", "installations", "Installation", False,
                           optional=True)


def calico_resources(group: str) -> tuple[Resource, ...]:
    version = "v3" if group == CALICO_V3 else "v1"
    return tuple(Resource(group, version, plural, kind, namespaced, optional=True)
                 for plural, kind, namespaced in CALICO_KINDS)


def keep_configmap(namespace: str, name: str) -> bool:
    """Only CNI-related ConfigMaps (and kubeadm/kube-proxy configuration) from kube-system."""
    if namespace != "kube-system":
        return True
    return name in KUBE_SYSTEM_CONFIGMAPS or any(h in name for h in KUBE_SYSTEM_CONFIGMAP_HINTS)
