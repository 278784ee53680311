"""Read a live cluster: the objects a snapshot would hold, in memory.

`read_cluster` does the reading (discovery, paged lists, normalisation); `read_inventory` hands
the result to the same builder snapshots go through (inventory/snapshot.py build_inventory), so a
live read and a snapshot of the same cluster give the same Inventory (same digest).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..inventory.model import Inventory
from ..yamlio import Loaded
from .client import DEFAULT_PAGE_SIZE, DEFAULT_TIMEOUT, Cluster
from .normalize import normalize, sort_key
from .resources import (CALICO_CRD, CALICO_V3, CORE, TIGERA_OPERATOR, Resource,
                        calico_resources, keep_configmap)

Progress = Callable[[str], None]

# The Calico API server lists every Kubernetes NetworkPolicy again as a Calico NetworkPolicy
# named knp.default.<name> (libcalico-go names.K8sNetworkPolicyNamePrefix). The originals are
# read from networking.k8s.io; keeping the copies would count every policy twice. Converted
# admin/cluster network policies (kanp., kbanp., kcnp.) are kept: nothing else reads them.
K8S_POLICY_PREFIX = "knp.default."


@dataclass
class ClusterRead:
    """Everything read from one cluster, grouped as the snapshot writes it."""
    source: str                                  # "context <name>"
    context: str
    files: dict[str, list[dict]]                 # "pods.yaml" -> normalised objects, sorted
    notes: list[str] = field(default_factory=list)   # what was absent (no Calico API...)

    def loaded(self) -> list[Loaded]:
        """Objects in the order load_snapshot would give them from the written snapshot."""
        out: list[Loaded] = []
        for name in sorted(self.files):
            out.extend(Loaded(obj, f"{self.source} {name}", 0, None) for obj in self.files[name])
        return out

    def counts(self) -> dict[str, int]:
        return {name: len(objs) for name, objs in sorted(self.files.items())}


def file_name(res: Resource) -> str:
    return f"{res.qualified}.yaml"


def read_cluster(kubeconfig: str | None = None, context: str | None = None, *,
                 page_size: int = DEFAULT_PAGE_SIZE, timeout: float = DEFAULT_TIMEOUT,
                 progress: Progress | None = None, cluster: Cluster | None = None) -> ClusterRead:
    """Read everything resources.py lists; progress(message) is told what is being read."""
    cluster = cluster or Cluster(kubeconfig, context, timeout=timeout)
    say = progress or (lambda _msg: None)
    result = ClusterRead(cluster.source, cluster.context, {})

    present_ns: set[str] = set()
    for res in CORE:
        if res.namespaces is None:
            say(f"reading {res.qualified}")
            objs = cluster.list_objects(res, page_size=page_size,
                                        on_page=_counter(say, res.qualified)) or []
        else:
            objs = []
            for ns in res.namespaces:
                if ns not in present_ns:
                    continue  # reading an absent namespace would only return nothing
                say(f"reading {res.qualified} in {ns}")
                objs.extend(cluster.list_objects(res, ns, page_size=page_size) or [])
        if res.kind == "ConfigMap":
            objs = [o for o in objs if keep_configmap(_ns(o), _name(o))]
        if res.kind == "Namespace":
            present_ns = {_name(o) for o in objs}
        _store(result, res, objs)

    say("discovering API groups")
    groups = cluster.api_groups()
    calico: tuple[str, set[str]] | None = None
    if "v3" in groups.get(CALICO_V3, ()):
        # The Calico API server is aggregated: registered does not mean answering.
        served = cluster.served_resources(CALICO_V3, "v3", unavailable_ok=True)
        if served is None:
            result.notes.append("projectcalico.org/v3 is registered but does not answer (is "
                                "the Calico API server running?): read crd.projectcalico.org/v1")
        else:
            calico = (CALICO_V3, served)
    if calico is None and "v1" in groups.get(CALICO_CRD, ()):
        calico = (CALICO_CRD, cluster.served_resources(CALICO_CRD, "v1") or set())
    if calico is None:
        result.notes.append("no Calico API served (projectcalico.org/v3 or "
                            "crd.projectcalico.org/v1): no Calico objects read")
    else:
        _read_optional(cluster, result, calico_resources(calico[0]), calico[1], page_size, say)
    if TIGERA_OPERATOR.version in groups.get(TIGERA_OPERATOR.group, ()):
        served = cluster.served_resources(TIGERA_OPERATOR.group, TIGERA_OPERATOR.version)
        _read_optional(cluster, result, (TIGERA_OPERATOR,), served or set(), page_size, say)
    return result


def read_inventory(kubeconfig: str | None = None, context: str | None = None, *,
                   page_size: int = DEFAULT_PAGE_SIZE, timeout: float = DEFAULT_TIMEOUT,
                   progress: Progress | None = None) -> Inventory:
    """The Inventory of a live cluster (what --kubeconfig/--context give every command)."""
    read = read_cluster(kubeconfig, context, page_size=page_size, timeout=timeout,
                        progress=progress)
    return inventory_of(read)


def inventory_of(read: ClusterRead) -> Inventory:
    from ..inventory.snapshot import build_inventory
    return build_inventory(read.loaded(), source=read.source, default_name=read.context)


def _read_optional(cluster: Cluster, result: ClusterRead, resources, served: set[str],
                   page_size: int, say: Progress) -> None:
    for res in resources:
        if res.plural not in served:
            result.notes.append(f"{res.qualified} not served: skipped")
            continue
        say(f"reading {res.qualified}")
        objs = cluster.list_objects(res, page_size=page_size,
                                    on_page=_counter(say, res.qualified))
        if objs is None:  # removed between discovery and the list
            result.notes.append(f"{res.qualified} not served: skipped")
            continue
        if res.group == CALICO_V3 and res.kind == "NetworkPolicy":
            objs = [o for o in objs if not _name(o).startswith(K8S_POLICY_PREFIX)]
        _store(result, res, objs)


def _counter(say: Progress, what: str):
    return lambda n: say(f"reading {what}: {n}")


def _store(result: ClusterRead, res: Resource, objs: list[dict]) -> None:
    clean = [normalize(o, res.api_version, res.kind) for o in objs]
    clean.sort(key=sort_key)
    result.files[file_name(res)] = clean


def _name(obj: dict) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _ns(obj: dict) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "")
