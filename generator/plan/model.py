"""The migration plan: options in, ordered waves out.

generator/plan/planner.py builds a Plan from an Inventory and Options (pure, no I/O).
generator/render/ turns a Plan into one file tree per wave; generator/emit/ commits them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

SUPPORTED_CILIUM = ("1.16", "1.17", "1.18", "1.19")
DEFAULT_CILIUM = "1.19"

# Pinned default images (override with --image NAME=REF, e.g. to pin by digest for air-gapped
# registries). "runner" runs the stdlib-only Python scripts mounted from a ConfigMap.
DEFAULT_IMAGES = {
    "runner": "docker.io/library/python:3.12-alpine",
    "probe": "registry.k8s.io/e2e-test-images/agnhost:2.53",
    "kubectl": "docker.io/bitnami/kubectl:1.31",
}


@dataclass
class Options:
    engine: str = "argocd"                      # "argocd" | "flux"
    cilium_version: str = DEFAULT_CILIUM        # "1.16".."1.19"
    cilium_chart_version: str | None = None     # full chart version, default per minor
    cilium_pod_cidr: str | None = None          # requested; validated, else chosen
    cilium_pod_cidr_mask: int = 24              # per-node mask size for cluster-pool IPAM
    service_cidr: str | None = None             # overrides kubeadm-config detection
    batch_size: str = "25%"                     # "N" nodes or "P%" of workers per batch
    canary: bool = True                         # first node wave is a single worker
    images: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_IMAGES))
    approximate: bool = False                   # allow reported approximations in translation
    host_default_deny: bool = False             # emit unselected HostEndpoints' default deny
    namespace: str = "cni-migration"            # where the migration's Jobs run
    repo_url: str = "https://git.example.com/platform/cni-migration.git"
    repo_revision: str = "main"
    argocd_namespace: str = "argocd"
    flux_namespace: str = "flux-system"
    helm_repo_url: str = "https://helm.cilium.io/"


@dataclass
class Wave:
    number: int                   # 0-based, also the commit order
    key: str                      # stable id: "preflight", "cilium-install", "nodeconfig",
                                  # "nodes-01".., "policies", "final-values", "nodeconfig-removal",
                                  # "old-cni-removal"
    title: str                    # short, for "wave NN: <title>"
    changes: list[str]            # bullet points: what this wave changes
    gates: list[str]              # what must pass before the next wave
    risk: str                     # "low" | "medium" | "high" | "irreversible"
    est_minutes: int
    rollback: str                 # how to undo, or why it cannot be undone
    reversible: bool = True
    nodes: list[str] = field(default_factory=list)   # nodes switched in this wave
    needs_approval: bool = False  # point of no return

    @property
    def dirname(self) -> str:
        return f"{self.number:02d}-{self.key}"


@dataclass
class Tunnel:
    protocol: str                 # "vxlan" | "geneve"
    port: int
    reason: str


@dataclass
class Plan:
    options: Options
    cluster_name: str
    source_cni: str               # Inventory.cni.kind
    cilium_pod_cidr: str
    cidr_reason: str              # why this CIDR (chosen or validated against what)
    tunnel: Tunnel
    waves: list[Wave]
    warnings: list[str] = field(default_factory=list)
    input_digest: str = ""        # Inventory.digest + options digest

    def wave(self, key: str) -> Wave:
        for w in self.waves:
            if w.key == key:
                return w
        raise KeyError(key)
