"""Make objects read from the API server look like what a snapshot stores.

List responses omit apiVersion/kind on items; the server adds bookkeeping (managedFields,
resourceVersion, uid...) and status fields that change every few seconds (heartbeats, container
restarts). Dropping those makes two reads of an unchanged cluster byte-identical.
"""
from __future__ import annotations

from ..inventory.snapshot import VOLATILE_ANNOTATIONS, VOLATILE_META

# Per-condition timestamps change without the condition changing.
_CONDITION_TIMES = ("lastHeartbeatTime", "lastProbeTime", "lastTransitionTime")
# Status parts that churn and that no stage reads.
_VOLATILE_STATUS = {
    "Node": ("images", "daemonEndpoints", "volumesInUse", "volumesAttached"),
    "Pod": ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses",
            "startTime"),
}


def normalize(obj: dict, api_version: str, kind: str) -> dict:
    """A new dict: apiVersion, kind, metadata, then the rest; volatile fields removed."""
    out = {"apiVersion": obj.get("apiVersion") or api_version, "kind": obj.get("kind") or kind}
    meta = dict(obj.get("metadata") or {})
    for k in VOLATILE_META:
        meta.pop(k, None)
    ann = meta.get("annotations")
    if isinstance(ann, dict):
        ann = {k: v for k, v in ann.items() if k not in VOLATILE_ANNOTATIONS}
        if ann:
            meta["annotations"] = ann
        else:
            del meta["annotations"]
    out["metadata"] = meta
    for k, v in obj.items():
        if k in ("apiVersion", "kind", "metadata"):
            continue
        out[k] = _status(v, out["kind"]) if k == "status" and isinstance(v, dict) else v
    return out


def _status(status: dict, kind: str) -> dict:
    drop = _VOLATILE_STATUS.get(kind, ())
    out = {k: v for k, v in status.items() if k not in drop}
    conds = out.get("conditions")
    if isinstance(conds, list):
        out["conditions"] = [{k: v for k, v in c.items() if k not in _CONDITION_TIMES}
                             if isinstance(c, dict) else c for c in conds]
    return out


def sort_key(obj: dict) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")
