"""Objects every wave relies on: the namespace, RBAC per Job kind, the runner scripts, the probes."""
from __future__ import annotations

from importlib import resources

from ..plan.model import Plan
from ..render.model import STEP_SETUP, Item
from .rbac import rbac_items
from .spec import (PROBE_NAME, PROBE_PORT, SCRIPTS_CONFIGMAP, container_security_context, labels,
                   meta, pod_security_context, tmp_volume)

RUNNER_PACKAGE = "generator.runner"


def runner_scripts() -> dict[str, str]:
    """The stdlib-only runner modules, by file name, read from the installed package."""
    out: dict[str, str] = {}
    for entry in sorted(resources.files(RUNNER_PACKAGE).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".py") and entry.name != "__init__.py":
            out[entry.name] = entry.read_text(encoding="utf-8")
    return out


def namespace(plan: Plan) -> dict:
    m = meta(plan.options.namespace, "namespace")
    # The namespace enforces what every pod in it already meets.
    m["labels"].update({
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    })
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": m}


def scripts_configmap(plan: Plan) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": meta(SCRIPTS_CONFIGMAP, "runner", plan.options.namespace),
            "data": runner_scripts()}


def probe_daemonset(plan: Plan) -> dict:
    """agnhost netexec on every node (all taints tolerated): the batch checks ask each probe pod
    to reach every other one (netexec /dial), the probe Service and a DNS name."""
    probe_labels = {"app.kubernetes.io/name": PROBE_NAME}
    container = {
        "name": "netexec",
        "image": plan.options.images["probe"],
        "imagePullPolicy": "IfNotPresent",
        "args": ["netexec", f"--http-port={PROBE_PORT}"],
        "ports": [{"name": "http", "containerPort": PROBE_PORT, "protocol": "TCP"}],
        "readinessProbe": {"tcpSocket": {"port": PROBE_PORT}, "periodSeconds": 5},
        "resources": {"requests": {"cpu": "5m", "memory": "16Mi"},
                      "limits": {"memory": "64Mi"}},
        "securityContext": container_security_context(),
        "volumeMounts": [tmp_volume()[1]],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": meta(PROBE_NAME, "probe", plan.options.namespace),
        "spec": {
            "selector": {"matchLabels": probe_labels},
            "updateStrategy": {"type": "RollingUpdate",
                               "rollingUpdate": {"maxUnavailable": "10%"}},
            "template": {
                # the selector's name label last: labels() carries a name of its own
                "metadata": {"labels": {**labels("probe"), **probe_labels}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security_context(),
                    "tolerations": [{"operator": "Exists"}],
                    "terminationGracePeriodSeconds": 1,
                    "containers": [container],
                    "volumes": [tmp_volume()[0]],
                },
            },
        },
    }


def probe_service(plan: Plan) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": meta(PROBE_NAME, "probe", plan.options.namespace),
            "spec": {"selector": {"app.kubernetes.io/name": PROBE_NAME},
                     "ports": [{"name": "http", "port": PROBE_PORT, "targetPort": PROBE_PORT,
                                "protocol": "TCP"}]}}


def common_items(plan: Plan) -> list[Item]:
    objs = [namespace(plan), *rbac_items(plan), scripts_configmap(plan),
            probe_daemonset(plan), probe_service(plan)]
    return [Item(o, STEP_SETUP) for o in objs]
