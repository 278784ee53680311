"""Building blocks for the migration's Jobs: names, labels and Pod Security "restricted" pods.

Every pod the migration starts (Jobs, the probe DaemonSet, the runner's check pod) meets the
"restricted" Pod Security profile, so the migration namespace can enforce it. Containers run as
nobody (65534) with a read-only root file system; /tmp is an emptyDir.
"""
from __future__ import annotations

import hashlib
import json
import re

from ..plan.model import Plan

APP = "cni-migrate"
CILIUM_NAMESPACE = "kube-system"          # the chart installs Cilium into kube-system
MIGRATION_LABEL = "io.cilium.migration/cilium-default"
SCRIPTS_CONFIGMAP = "cni-migrate-runner"
SCRIPTS_DIR = "/scripts"
PROBE_NAME = "cni-migrate-probe"
PROBE_PORT = 8080
NOBODY = 65534


def labels(component: str) -> dict:
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": component,
            "app.kubernetes.io/managed-by": APP}


def meta(name: str, component: str, namespace: str | None = None,
         annotations: dict | None = None) -> dict:
    m: dict = {"name": name}
    if namespace:
        m["namespace"] = namespace
    m["labels"] = labels(component)
    if annotations:
        m["annotations"] = dict(sorted(annotations.items()))
    return m


def short_hash(plan: Plan, *parts: str) -> str:
    """8 hex digits that change with the input and the wave, so a new plan gets new Job names
    (Jobs are immutable, and a re-used name would keep an old, completed Job as the gate)."""
    text = "\0".join((plan.input_digest, *parts))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


_HASH_SUFFIX = re.compile(r"-[0-9a-f]{8}$")


def content_named(obj: dict) -> dict:
    """A Job renamed after its own content: <name without hash>-<8 hex of its spec>.

    A re-run with changed input (a new snapshot a day later, one more policy) then keeps the
    name of every Job whose work did not change, so Argo CD/Flux do not re-create and re-run
    Jobs of waves that were already applied; a Job whose work changed gets a new name, because
    Jobs are immutable and a completed Job of the same name would pass as the new gate."""
    if obj.get("kind") != "Job":
        return obj
    meta = obj.get("metadata") or {}
    body = {"labels": meta.get("labels"), "annotations": meta.get("annotations"),
            "namespace": meta.get("namespace"), "spec": obj.get("spec")}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:8]
    base = _HASH_SUFFIX.sub("", meta.get("name", "job"))[:54].rstrip("-")
    return {**obj, "metadata": {**meta, "name": f"{base}-{digest}"}}


def job_name(plan: Plan, kind: str, key: str | None = None) -> str:
    suffix = short_hash(plan, kind, key or "")
    if key and key.startswith(f"{kind}-"):
        name = f"{APP}-{key}-{suffix}"          # cni-migrate-nodes-01-<hash>, not nodes-nodes-01
    elif key:
        name = f"{APP}-{kind}-{key}-{suffix}"
    else:
        name = f"{APP}-{kind}-{suffix}"
    return name[:63].rstrip("-")


def service_account(kind: str) -> str:
    return f"{APP}-{kind}"


def pod_security_context() -> dict:
    return {"runAsNonRoot": True, "runAsUser": NOBODY, "runAsGroup": NOBODY,
            "fsGroup": NOBODY, "seccompProfile": {"type": "RuntimeDefault"}}


def container_security_context() -> dict:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "runAsNonRoot": True, "runAsUser": NOBODY,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}


def tmp_volume() -> tuple[dict, dict]:
    return {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}, {"name": "tmp", "mountPath": "/tmp"}


def runner_container(plan: Plan, script: str, args: list[str]) -> dict:
    """A container running one of generator/runner/*.py from the scripts ConfigMap."""
    return {
        "name": "runner",
        "image": plan.options.images["runner"],
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", f"{SCRIPTS_DIR}/{script}"],
        "args": list(args),
        "env": [
            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            {"name": "HOME", "value": "/tmp"},
            {"name": "POD_NAMESPACE",
             "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        ],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                      "limits": {"memory": "256Mi"}},
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "scripts", "mountPath": SCRIPTS_DIR, "readOnly": True},
                         tmp_volume()[1]],
    }


def job(plan: Plan, *, name: str, kind: str, script: str, args: list[str],
        deadline_seconds: int, backoff_limit: int = 1, avoid_nodes: list[str] | None = None,
        annotations: dict | None = None) -> dict:
    """A Job running a runner script. No ttlSecondsAfterFinished: a TTL-deleted Job would be
    re-created by the next GitOps sync and run again (gitops.md)."""
    ns = plan.options.namespace
    pod_spec: dict = {
        "serviceAccountName": service_account(kind),
        "restartPolicy": "Never",
        "securityContext": pod_security_context(),
    }
    if avoid_nodes:
        # The runner must not drain the node it runs on: it would evict itself mid-batch.
        pod_spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            # metadata.name, not the hostname label: the two differ on some clouds
            "nodeSelectorTerms": [{"matchFields": [{
                "key": "metadata.name", "operator": "NotIn",
                "values": sorted(avoid_nodes)}]}]}}}
    pod_spec["containers"] = [runner_container(plan, script, args)]
    pod_spec["volumes"] = [
        {"name": "scripts", "configMap": {"name": SCRIPTS_CONFIGMAP, "defaultMode": 0o444}},
        tmp_volume()[0],
    ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta(name, kind, ns, annotations),
        "spec": {
            "backoffLimit": backoff_limit,
            "activeDeadlineSeconds": deadline_seconds,
            "template": {
                "metadata": {"labels": labels(kind)},
                "spec": pod_spec,
            },
        },
    }
