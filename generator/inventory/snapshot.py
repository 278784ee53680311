"""Read a snapshot (YAML as `kubectl get ... -o yaml` writes it) into an Inventory.

One pass over the loaded objects: each object is keyed once (duplicate check), sorted into the
typed lists of inventory/model.py, and hashed once for the digest. Nothing is looked up by
scanning a list, so 5,000 nodes / 50,000 pods / 20,000 policies load in linear time.
"""
from __future__ import annotations

import gc
import hashlib
import ipaddress
import json
from contextlib import contextmanager
from json.encoder import c_make_encoder, encode_basestring_ascii
from pathlib import Path

from ..errors import UserError, object_name
from ..yamlio import Loaded, iter_yaml_files, load_paths
from . import detect
from .detect import parse_cluster_configuration
from .model import (ContainerPort, Inventory, Namespace, Node, Pod, Service, ServiceAccount)

CALICO_GROUPS = ("projectcalico.org", "crd.projectcalico.org")
CALICO_POLICY_KINDS = frozenset({
    "GlobalNetworkPolicy", "NetworkPolicy", "Tier", "GlobalNetworkSet", "NetworkSet",
    "HostEndpoint", "StagedGlobalNetworkPolicy", "StagedNetworkPolicy",
    "StagedKubernetesNetworkPolicy",
})

# Cluster-scoped policy kinds Calico 3.30+ enforces but the translator does not read.
ADMIN_POLICY_KINDS = frozenset({"AdminNetworkPolicy", "BaselineAdminNetworkPolicy",
                                "ClusterNetworkPolicy"})

# Metadata that changes without the object changing (server bookkeeping).
VOLATILE_META = ("resourceVersion", "uid", "managedFields", "creationTimestamp", "generation",
                 "selfLink")
VOLATILE_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",
                        "deployment.kubernetes.io/revision")
# Kinds that churn constantly and never influence a plan: left out of the digest.
DIGEST_SKIP_KINDS = frozenset({"Event", "Lease", "Endpoints", "EndpointSlice",
                               "ControllerRevision"})

CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
ZONE_LABELS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")


def api_group(api_version: str | None) -> str:
    """'crd.projectcalico.org/v1' -> 'crd.projectcalico.org'; 'v1' -> '' (core)."""
    av = api_version or ""
    return av.rsplit("/", 1)[0] if "/" in av else ""


def is_policy_object(obj: dict) -> bool:
    kind = obj.get("kind")
    group = api_group(obj.get("apiVersion"))
    if group in CALICO_GROUPS:
        return kind in CALICO_POLICY_KINDS
    return group == "networking.k8s.io" and kind == "NetworkPolicy"


def load_snapshot(paths: list[str], *, service_cidr: str | None = None) -> Inventory:
    """Inventory from snapshot directories/files. service_cidr overrides kubeadm-config."""
    paths = [str(p) for p in paths]
    if not paths:
        raise UserError("no snapshot path given")
    # A directory and a file inside it may both be named: read each file once.
    files, seen_files = [], set()
    for f in iter_yaml_files(paths):
        real = f.resolve()
        if real not in seen_files:
            seen_files.add(real)
            files.append(f)
    with _gc_paused():
        return _load_files(files, paths, service_cidr)


def _load_files(files: list[Path], paths: list[str], service_cidr: str | None) -> Inventory:
    # the raw objects are dropped on return, before the collector runs again
    loaded = load_paths(files)
    if not loaded:
        raise UserError("no Kubernetes objects found (expected kubectl get -o yaml output)",
                        file=", ".join(paths))
    return build_inventory(loaded, source=" ".join(paths),
                           default_name=_dir_name(paths[0]), service_cidr=service_cidr)


@contextmanager
def _gc_paused():
    """Parsing a snapshot makes millions of dicts and lists and no reference cycles; most are
    dropped once typed. The cycle collector would only walk them again and again (0.5-1 s of
    a 50,000-pod load); after the load it walks just what the Inventory keeps."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def build_inventory(loaded: list[Loaded], *, source: str, default_name: str,
                    service_cidr: str | None = None) -> Inventory:
    """The Inventory of already-loaded objects (also used by the live reader)."""
    seen: dict[tuple, Loaded] = {}
    hashes: list[tuple[tuple, str]] = []
    kept: list[Loaded] = []
    nodes: list[Node] = []
    namespaces: list[Namespace] = []
    pods: list[Pod] = []
    sas: list[ServiceAccount] = []
    services: list[Service] = []
    pdbs: list[dict] = []
    policy: list[Loaded] = []
    admin: list[str] = []
    cluster_name = None
    typed_lists = {"Node": nodes, "Pod": pods, "Service": services}
    shared = _Shared()

    for item in loaded:
        obj = item.obj
        meta = obj.get("metadata")
        if not isinstance(meta, dict) or not meta.get("name") or not obj.get("kind"):
            raise UserError("object without kind or metadata.name", file=item.where,
                            obj=object_name(obj))
        kind = obj["kind"]
        group = api_group(obj.get("apiVersion"))
        key = (group, kind, meta.get("namespace") or "", meta["name"])
        first = seen.get(key)
        if first is not None:
            raise UserError(f"duplicate object (also in {first.where})", file=item.where,
                            obj=object_name(obj))
        seen[key] = item
        if kind not in DIGEST_SKIP_KINDS:
            hashes.append((key, _object_hash(obj)))

        if group == "" and kind in _TYPED:
            try:
                typed = _TYPED[kind](item, shared)
            except (TypeError, ValueError, AttributeError, KeyError) as e:
                # a hand-edited export with a wrong type somewhere: name it, no traceback
                raise UserError(f"malformed {kind}: {e.__class__.__name__}: {e}",
                                file=item.where, obj=object_name(obj)) from None
            typed_lists[kind].append(typed)
        elif group == "":
            if kind == "Namespace":
                namespaces.append(Namespace(shared.text(meta["name"]),
                                            shared.labels(meta.get("labels"))))
            elif kind == "ServiceAccount":
                sas.append(ServiceAccount(meta["name"],
                                          shared.text(meta.get("namespace") or "default"),
                                          shared.labels(meta.get("labels"))))
            elif kind == "ConfigMap" and meta["name"] == "kubeadm-config":
                cluster_name = _kubeadm_cluster_name(item)
        elif kind == "PodDisruptionBudget" and group == "policy":
            pdbs.append(obj)
        elif is_policy_object(obj):
            policy.append(item)
        elif group == "policy.networking.k8s.io" and kind in ADMIN_POLICY_KINDS:
            admin.append(f"{kind} {meta['name']}")
        # after typing, which has checked the shape
        if group or kind not in TYPED_ONLY or (kind == "Pod" and _maps_host_ports(obj)):
            kept.append(item)

    # detection and CIDRs read raw Nodes, Pods and Services: all of `loaded`, not `kept`
    idx = detect.index(loaded)
    cni = detect.detect_cni(loaded, idx)
    if admin and cni.enforces_policy:
        cni.warnings.append(
            f"{len(admin)} admin network policies ({', '.join(sorted(admin)[:3])}"
            f"{', ...' if len(admin) > 3 else ''}) are enforced by Calico but not translated: "
            "they stop being enforced once Cilium takes over; recreate them before the "
            "policies wave")
    cidrs, svc = detect.collect_cidrs(loaded, nodes, service_cidr, idx)
    hashes.sort(key=lambda kh: kh[0])  # keys are unique (duplicates refused above)
    digest = hashlib.sha256("\n".join(f"{'/'.join(k)} {h}" for k, h in hashes).encode())
    return Inventory(
        source=source, objects=kept, nodes=nodes, namespaces=namespaces, pods=pods,
        service_accounts=sas, services=services, pdbs=pdbs, cni=cni, cidrs=cidrs,
        service_cidr=svc, cluster_name=cluster_name or default_name, policy_objects=policy,
        digest=digest.hexdigest())


# Core kinds held only in typed form (Inventory.nodes, pods, ...): nothing after the build reads
# them raw, and at 50,000 pods their dicts are most of a snapshot's memory (~140 MB).
TYPED_ONLY = frozenset({"Node", "Pod", "Service", "Namespace", "ServiceAccount"})


def _maps_host_ports(pod: dict) -> bool:
    """plan/network.py reads hostPort mappings from the raw Pod, in object order: the few Pods
    that have any (or a malformed port entry, so that reading stays as it was) are kept raw."""
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if not isinstance(p, dict) or p.get("hostPort"):
                return True
    return False


class _Shared:
    """One string object per distinct value (namespace, node, label value, ...) and one tuple
    per distinct list of container ports: a snapshot repeats them on every pod. Lives for one
    build; what it holds is immutable."""

    def __init__(self):
        self.strings: dict[str, str] = {}
        self.port_lists: dict[tuple, tuple[ContainerPort, ...]] = {}

    def text(self, value):
        return self.strings.setdefault(value, value) if type(value) is str else value

    def labels(self, raw) -> dict:
        labels = dict(raw or {})
        for k, v in labels.items():
            if type(v) is str:
                labels[k] = self.strings.setdefault(v, v)
        return labels

    def ports(self, ports: tuple[tuple, ...]) -> tuple[ContainerPort, ...]:
        """(name, port, protocol) triples as ContainerPorts."""
        try:
            got = self.port_lists.get(ports)
        except TypeError:  # a list as a port name: odd, but it was accepted before
            return tuple(ContainerPort(n, p, proto) for n, p, proto in ports)
        if got is None:
            got = self.port_lists[ports] = tuple(
                ContainerPort(self.text(n), p, self.text(proto)) for n, p, proto in ports)
        return got


def _dir_name(path: str) -> str:
    p = Path(path).resolve()
    return (p if p.is_dir() else p.parent).name or "cluster"


# ---- canonical form for the digest ------------------------------------------------------------

def canonical(obj: dict) -> dict:
    """The object without server bookkeeping; status kept only where a plan reads it."""
    out = dict(obj)  # key order is free: the digest encodes with sorted keys
    status = out.pop("status", None)
    meta = dict(obj.get("metadata") or {})
    for k in VOLATILE_META:
        if k in meta:
            del meta[k]
    ann = meta.get("annotations")
    if ann:
        ann = {k: v for k, v in ann.items() if k not in VOLATILE_ANNOTATIONS}
        if ann:
            meta["annotations"] = ann
        else:
            meta.pop("annotations")
    out["metadata"] = meta
    if isinstance(status, dict):
        kind = obj.get("kind")
        if kind == "Node":
            # addresses and readiness matter; heartbeat times, images, capacity do not
            out["status"] = {"addresses": status.get("addresses"), "ready": _node_ready(status)}
        elif kind == "Pod":
            out["status"] = {"podIPs": status.get("podIPs"), "podIP": status.get("podIP"),
                             "hostIP": status.get("hostIP")}
    return out


# json.dumps(sort_keys=True, separators=(",", ":"), default=str), with the C encoder that
# JSONEncoder.encode builds on every call built once (it keeps no state without markers).
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), check_circular=False,
                            default=str)
_C_ENCODE = c_make_encoder and c_make_encoder(None, str, encode_basestring_ascii, None, ":", ",",
                                              True, False, True)


def _canonical_json(obj: dict) -> str:
    if _C_ENCODE is None:  # pragma: no cover - Python built without the _json accelerator
        return _ENCODER.encode(canonical(obj))
    return "".join(_C_ENCODE(canonical(obj), 0))


def _object_hash(obj: dict) -> str:
    return hashlib.sha256(_canonical_json(obj).encode()).hexdigest()


# ---- typed objects ------------------------------------------------------------------------------

def _node_ready(status: dict) -> bool:
    for c in status.get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def _is_ip(text) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except (ValueError, TypeError):
        return False


def _node(item: Loaded, shared: _Shared) -> Node:
    obj = item.obj
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    labels = shared.labels(meta.get("labels"))
    internal, addrs = None, []
    for a in status.get("addresses") or []:
        addr = a.get("address") if isinstance(a, dict) else None
        if not _is_ip(addr):
            continue  # Hostname entries
        addrs.append(addr)
        if a.get("type") == "InternalIP" and internal is None:
            internal = addr
    cidrs = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
    zone = next((labels[z] for z in ZONE_LABELS if z in labels), None)
    return Node(
        name=shared.text(meta["name"]), labels=labels, internal_ip=internal,
        addresses=tuple(addrs), pod_cidrs=tuple(cidrs),
        control_plane=any(k in labels for k in CONTROL_PLANE_LABELS), zone=zone,
        ready=_node_ready(status), taints=tuple(spec.get("taints") or ()))


def _pod(item: Loaded, shared: _Shared) -> Pod:
    obj = item.obj
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or [] if isinstance(p, dict) and p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    owners = meta.get("ownerReferences") or []
    owner = next((o for o in owners if o.get("controller")), owners[0] if owners else None)
    ports = []
    # Native sidecars (init containers that keep running) serve ports too.
    containers = list(spec.get("containers") or []) + [
        c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    for c in containers:
        for p in c.get("ports") or []:
            if isinstance(p, dict) and p.get("containerPort") is not None:
                ports.append((p.get("name"), int(p["containerPort"]), p.get("protocol") or "TCP"))
    text = shared.text
    return Pod(
        name=meta["name"], namespace=text(meta.get("namespace") or "default"),
        labels=shared.labels(meta.get("labels")), node=text(spec.get("nodeName")),
        ips=tuple(ips), host_network=bool(spec.get("hostNetwork")),
        service_account=text(spec.get("serviceAccountName") or spec.get("serviceAccount")
                             or "default"),
        owner_kind=text(owner.get("kind")) if owner else None,
        owner_name=text(owner.get("name")) if owner else None, ports=shared.ports(tuple(ports)))


def _service(item: Loaded, shared: _Shared) -> Service:
    obj = item.obj
    meta, spec = obj["metadata"], obj.get("spec") or {}
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return Service(
        name=meta["name"], namespace=shared.text(meta.get("namespace") or "default"),
        selector=shared.labels(spec.get("selector")),
        cluster_ips=tuple(ip for ip in ips if ip and ip != "None"),
        ports=tuple(spec.get("ports") or ()))


def _kubeadm_cluster_name(item: Loaded) -> str | None:
    conf = parse_cluster_configuration(item)
    name = conf.get("clusterName") if conf else None
    return str(name) if name else None


_TYPED = {"Node": _node, "Pod": _pod, "Service": _service}
