"""Engine-independent objects the render places in waves: the CiliumNodeConfig and the partial
Node manifests that label nodes for the switch."""
from __future__ import annotations

from ..cilium.values import node_config_api_version
from ..plan.model import Plan
from ..plan.planner import MIGRATION_LABEL

CILIUM_NAMESPACE = "kube-system"     # the CiliumNodeConfig must live in Cilium's namespace
NODE_CONFIG_NAME = "cilium-default"
CNI_CONF = "/host/etc/cni/net.d/05-cilium.conflist"


def node_config(plan: Plan) -> dict:
    """The per-node config that switches a labelled node to Cilium (read by the agent's init
    container at start only). Every value in defaults is a string: the CRD is map[string]string."""
    return {
        "apiVersion": node_config_api_version(plan.options.cilium_version),
        "kind": "CiliumNodeConfig",
        "metadata": {"name": NODE_CONFIG_NAME, "namespace": CILIUM_NAMESPACE},
        "spec": {
            "nodeSelector": {"matchLabels": {MIGRATION_LABEL: "true"}},
            "defaults": {
                "write-cni-conf-when-ready": CNI_CONF,
                "custom-cni-conf": "false",
                "cni-chaining-mode": "none",
                # renames the old CNI's configs to *.cilium_bak on the switched node
                "cni-exclusive": "true",
            },
        },
    }


def node_label(name: str, labelled: bool = True) -> dict:
    """A partial Node manifest: only the name and the migration label. The engine wiring adds
    server-side-apply / never-prune annotations (render/argocd.py, render/flux.py). With
    labelled=False the label is dropped from the manifest, which removes it from the Node (the
    GitOps engine owns that field) while keeping the manifest, so the Node is never deleted."""
    meta: dict = {"name": name}
    if labelled:
        meta["labels"] = {MIGRATION_LABEL: "true"}
    return {"apiVersion": "v1", "kind": "Node", "metadata": meta}
