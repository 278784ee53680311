"""A stand-in Kubernetes API server for tests: http.server on 127.0.0.1, a random port, a thread.

Generic part: an in-memory store keyed by (group, version, plural, namespace, name) with
discovery (/api, /apis, /api/v1, /apis/<group>/<version>, /version), list (labelSelector,
fieldSelector, limit/continue paging), get, create, update (PUT), merge patch (JSON merge
patch; strategic-merge is treated the same, which is right for labels, annotations and scalar
fields), JSON patch, delete, and the pods/eviction subresource (429 while a matching
PodDisruptionBudget has status.disruptionsAllowed < 1). `forbid(verb, resource)` makes a call
answer 403; `fail(method, path, code, times)` injects server errors. Every request is logged in `requests` as (method, path, query).

Behaviour hooks (tests model controllers with them):
    on(event, resource, fn)       fn(fake, obj) after "create" | "delete" | "patch" | "update"
    later(n, fn)                  fn(fake) after n more requests (a poll-counted delay)
    assign_pod_ips(fn)            new pods without status.podIP get fn(pod) (ips_from(cidr))
    replace_on_delete(match, ready_after=N, ip_for=fn)   a deleted matching pod comes back
                                  (new name, same node) and turns Ready after N requests
    finish_pods(match, after=N, phase="Succeeded")       created matching pods end after N requests

Builders: node(), pod(), pdb(), set_pod_ready(). MigrationCluster (end of file) models a
cluster mid-migration for the runner tests: Cilium agents, old-CNI vs Cilium addresses by node
label + agent restart, DaemonSet pods re-created on delete, check pods that finish.

Usage:
    with FakeKube() as kube:
        kube.add(node("worker-1"))
        client = Client(kube.url)
"""
from __future__ import annotations

import base64
import copy
import ipaddress
import itertools
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Resource:
    group: str          # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


_CALICO_KINDS = [("ippools", "IPPool", False), ("globalnetworkpolicies", "GlobalNetworkPolicy", False),
                 ("networkpolicies", "NetworkPolicy", True), ("globalnetworksets", "GlobalNetworkSet", False),
                 ("networksets", "NetworkSet", True), ("hostendpoints", "HostEndpoint", False),
                 ("felixconfigurations", "FelixConfiguration", False),
                 ("bgpconfigurations", "BGPConfiguration", False),
                 ("tiers", "Tier", False), ("stagednetworkpolicies", "StagedNetworkPolicy", True),
                 ("stagedglobalnetworkpolicies", "StagedGlobalNetworkPolicy", False),
                 ("ipamblocks", "IPAMBlock", False), ("clusterinformations", "ClusterInformation", False)]

DEFAULT_RESOURCES = [
    Resource("", "v1", "nodes", "Node", False),
    Resource("", "v1", "namespaces", "Namespace", False),
    Resource("", "v1", "pods", "Pod"),
    Resource("", "v1", "services", "Service"),
    Resource("", "v1", "endpoints", "Endpoints"),
    Resource("", "v1", "configmaps", "ConfigMap"),
    Resource("", "v1", "serviceaccounts", "ServiceAccount"),
    Resource("", "v1", "events", "Event"),
    Resource("apps", "v1", "daemonsets", "DaemonSet"),
    Resource("apps", "v1", "deployments", "Deployment"),
    Resource("apps", "v1", "replicasets", "ReplicaSet"),
    Resource("apps", "v1", "statefulsets", "StatefulSet"),
    Resource("batch", "v1", "jobs", "Job"),
    Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget"),
    Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"),
    Resource("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions",
             "CustomResourceDefinition", False),
    Resource("operator.tigera.io", "v1", "installations", "Installation", False),
    Resource("cilium.io", "v2", "ciliumnetworkpolicies", "CiliumNetworkPolicy"),
    Resource("cilium.io", "v2", "ciliumclusterwidenetworkpolicies",
             "CiliumClusterwideNetworkPolicy", False),
    Resource("cilium.io", "v2", "ciliumnodeconfigs", "CiliumNodeConfig"),
    *[Resource("crd.projectcalico.org", "v1", p, k, ns) for p, k, ns in _CALICO_KINDS],
    *[Resource("projectcalico.org", "v3", p, k, ns) for p, k, ns in _CALICO_KINDS],
]

SUBRESOURCES = {"pods": ["eviction", "status", "log"], "nodes": ["status"],
                "deployments": ["status", "scale"], "daemonsets": ["status"]}


class HttpError(Exception):
    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


# --- selectors ---------------------------------------------------------------------------------

def _split_terms(text: str) -> list[str]:
    terms, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        terms.append(cur.strip())
    return terms


def label_match(selector: str | None, labels: dict | None) -> bool:
    """Kubernetes label selector text: k=v, k==v, k!=v, k, !k, k in (a,b), k notin (a,b)."""
    labels = labels or {}
    for term in _split_terms(selector or ""):
        m = re.fullmatch(r"(\S+)\s+(in|notin)\s+\((.*)\)", term)
        if m:
            values = {v.strip() for v in m.group(3).split(",")}
            inside = labels.get(m.group(1)) in values
            if inside != (m.group(2) == "in"):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term not in labels:
            return False
    return True


def selector_match(sel: dict | None, labels: dict | None) -> bool:
    """A LabelSelector object (matchLabels + matchExpressions). An empty selector matches all."""
    sel, labels = sel or {}, labels or {}
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _dig(obj: dict, dotted: str):
    cur = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def field_match(selector: str | None, obj: dict) -> bool:
    for term in _split_terms(selector or ""):
        neg = "!=" in term
        k, v = (term.split("!=", 1) if neg else term.replace("==", "=").split("=", 1))
        have = _dig(obj, k.strip())
        have = "" if have is None else str(have)
        if (have == v.strip()) == neg:
            return False
    return True


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _json_pointer_apply(obj: dict, ops: list[dict]) -> dict:
    obj = copy.deepcopy(obj)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = obj
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent.setdefault(p, {})
        last = parts[-1]
        if op["op"] in ("add", "replace"):
            if isinstance(parent, list):
                idx = len(parent) if last == "-" else int(last)
                if op["op"] == "add":
                    parent.insert(idx, op["value"])
                else:
                    parent[idx] = op["value"]
            else:
                parent[last] = op["value"]
        elif op["op"] == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            else:
                parent.pop(last, None)
        else:
            raise HttpError(422, "Invalid", f"json patch op {op['op']} not supported")
    return obj


# --- object builders for tests -------------------------------------------------------------------

def node(name: str, *, labels: dict | None = None, ready: bool = True, ip: str = "192.168.0.1",
         pod_cidr: str | None = None, unschedulable: bool = False,
         annotations: dict | None = None) -> dict:
    spec: dict = {}
    if pod_cidr:
        spec["podCIDR"] = pod_cidr
        spec["podCIDRs"] = [pod_cidr]
    if unschedulable:
        spec["unschedulable"] = True
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                  **(labels or {})},
                         "annotations": dict(annotations or {})},
            "spec": spec,
            "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pod(name: str, namespace: str = "default", *, node_name: str | None = None,
        ip: str | None = None, labels: dict | None = None, owner_kind: str | None = "ReplicaSet",
        owner_name: str | None = None, host_network: bool = False, ready: bool = True,
        phase: str = "Running", restarts: int = 0) -> dict:
    meta: dict = {"name": name, "namespace": namespace, "labels": dict(labels or {})}
    if owner_kind:
        meta["ownerReferences"] = [{"apiVersion": "v1" if owner_kind == "Node" else "apps/v1",
                                    "kind": owner_kind, "name": owner_name or f"{name}-owner",
                                    "controller": True, "uid": f"uid-{owner_name or name}"}]
    spec: dict = {"containers": [{"name": "main", "image": "example"}]}
    if node_name:
        spec["nodeName"] = node_name
    if host_network:
        spec["hostNetwork"] = True
    status: dict = {"phase": phase,
                    "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                    "containerStatuses": [{"name": "main", "ready": ready,
                                           "restartCount": restarts}]}
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def pdb(name: str, namespace: str, match_labels: dict, allowed: int) -> dict:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"matchLabels": dict(match_labels)}, "minAvailable": 1},
            "status": {"disruptionsAllowed": allowed}}


def ips_from(cidr: str) -> Callable[[dict], str]:
    """An address allocator for assign_pod_ips / replace_on_delete: the next free host of cidr."""
    hosts = ipaddress.ip_network(cidr, strict=False).hosts()
    return lambda _pod: str(next(hosts))


def set_pod_ready(obj: dict, ready: bool) -> None:
    status = obj.setdefault("status", {})
    status["conditions"] = [c for c in status.get("conditions", []) if c.get("type") != "Ready"]
    status["conditions"].append({"type": "Ready", "status": "True" if ready else "False"})
    for cs in status.get("containerStatuses", []):
        cs["ready"] = ready


# --- the server ----------------------------------------------------------------------------------

class FakeKube:
    def __init__(self, resources: list[Resource] | None = None):
        self.lock = threading.RLock()
        self.resources: dict[tuple[str, str, str], Resource] = {}
        for r in resources or DEFAULT_RESOURCES:
            self.register(r)
        self.store: dict[tuple[str, str, str, str, str], dict] = {}
        self.forbidden: set[tuple[str, str]] = set()
        self.failures: list[list] = []     # [method, path, code, times left]
        self.requests: list[tuple[str, str, dict]] = []
        self.hooks: dict[tuple[str, str], list[Callable]] = {}
        self._later: list[list] = []       # [remaining requests, fn]
        self._seq = itertools.count(1)
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> str:
        fake = self

        class Handler(_Handler):
            kube = fake

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self.url

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self) -> "FakeKube":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    # registry
    def register(self, r: Resource) -> None:
        self.resources[(r.group, r.version, r.plural)] = r

    def resource_for(self, api_version: str, kind: str) -> Resource:
        group, _, version = api_version.rpartition("/")
        for r in self.resources.values():
            if r.group == group and r.version == version and r.kind == kind:
                return r
        raise KeyError(f"{api_version} {kind} is not registered in FakeKube")

    def require_token(self, token: str | None) -> None:
        """Answer 401 to requests without `Authorization: Bearer <token>` (None: no check).
        Added for the live reader's credential tests."""
        self.token = token

    def fail(self, method: str, path: str, code: int = 503, times: int = 1) -> None:
        """Answer the next `times` requests of `method` on exactly `path` with HTTP `code`."""
        self.failures.append([method, path, code, times])

    def forbid(self, verb: str, resource: str) -> None:
        """Answer 403 to `verb` on `resource` ("pods", "pods/eviction", "nodes"...)."""
        self.forbidden.add((verb, resource))

    # direct store access for tests (no HTTP)
    def add(self, obj: dict) -> dict:
        with self.lock:
            r = self.resource_for(obj["apiVersion"], obj["kind"])
            return self._create(r, obj["metadata"].get("namespace", "") if r.namespaced else "",
                                copy.deepcopy(obj), run_hooks=False)

    def obj(self, plural: str, name: str, namespace: str = "", group: str = "",
            version: str = "v1") -> dict | None:
        with self.lock:
            return self.store.get((group, version, plural, namespace, name))

    def objects(self, plural: str, namespace: str | None = None, group: str = "",
                version: str = "v1") -> list[dict]:
        with self.lock:
            return [o for (g, v, p, ns, _), o in sorted(self.store.items())
                    if (g, v, p) == (group, version, plural)
                    and (namespace is None or ns == namespace)]

    def remove(self, plural: str, name: str, namespace: str = "", group: str = "",
               version: str = "v1") -> dict | None:
        with self.lock:
            obj = self.store.pop((group, version, plural, namespace, name), None)
            if obj is not None:
                self._fire("delete", plural, obj)
            return obj

    # hooks
    def on(self, event: str, resource: str, fn: Callable) -> None:
        self.hooks.setdefault((event, resource), []).append(fn)

    def later(self, n: int, fn: Callable) -> None:
        with self.lock:
            if n <= 0:
                fn(self)
            else:
                self._later.append([n, fn])

    def _fire(self, event: str, resource: str, obj: dict) -> None:
        for fn in self.hooks.get((event, resource), []):
            fn(self, obj)

    def _tick(self) -> None:
        due = []
        for entry in self._later:
            entry[0] -= 1
            if entry[0] <= 0:
                due.append(entry)
        for entry in due:
            self._later.remove(entry)
            entry[1](self)

    # modelled controllers
    def assign_pod_ips(self, ip_for: Callable[[dict], str | None]) -> None:
        def hook(kube, obj):
            status = obj.setdefault("status", {})
            if not status.get("podIP") and not (obj.get("spec") or {}).get("hostNetwork"):
                ip = ip_for(obj)
                if ip:
                    status["podIP"] = ip
                    status["podIPs"] = [{"ip": ip}]
        self.on("create", "pods", hook)

    def replace_on_delete(self, match: Callable[[dict], bool], *, ready_after: int = 0,
                          ip_for: Callable[[dict], str | None] | None = None) -> None:
        """Model a DaemonSet/ReplicaSet: a deleted matching pod comes back on the same node with
        a new name, not Ready; it turns Ready (with an address from ip_for) after N requests."""
        def hook(kube, old):
            if not match(old):
                return
            new = copy.deepcopy(old)
            base = old["metadata"].get("generateName") or old["metadata"]["name"].rsplit("-", 1)[0] + "-"
            meta = new["metadata"]
            meta["name"] = f"{base}r{next(kube._seq)}"
            for k in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp"):
                meta.pop(k, None)
            new["status"] = {"phase": "Pending"}
            ns = meta.get("namespace", "")
            created = kube._create(kube.resources[("", "v1", "pods")], ns, new, run_hooks=False)

            def become_ready(kube2):
                cur = kube2.obj("pods", created["metadata"]["name"], ns)
                if cur is None:
                    return
                cur["status"]["phase"] = "Running"
                cur["status"]["containerStatuses"] = [{"name": "main", "ready": True,
                                                       "restartCount": 0}]
                set_pod_ready(cur, True)
                ip = ip_for(cur) if ip_for and not cur["spec"].get("hostNetwork") else None
                if ip:
                    cur["status"]["podIP"] = ip
                    cur["status"]["podIPs"] = [{"ip": ip}]
            kube.later(ready_after, become_ready)
        self.on("delete", "pods", hook)

    def finish_pods(self, match: Callable[[dict], bool], *, after: int = 0,
                    phase: str | Callable[[dict], str] = "Succeeded") -> None:
        def hook(kube, obj):
            if not match(obj):
                return
            ns, name = obj["metadata"].get("namespace", ""), obj["metadata"]["name"]

            def finish(kube2):
                cur = kube2.obj("pods", name, ns)
                if cur is not None:
                    cur.setdefault("status", {})["phase"] = phase(cur) if callable(phase) else phase
            kube.later(after, finish)
        self.on("create", "pods", hook)

    # store operations (caller holds the lock)
    def _create(self, r: Resource, ns: str, obj: dict, *, run_hooks: bool = True) -> dict:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{next(self._seq):05d}"
        if not meta.get("name"):
            raise HttpError(422, "Invalid", "metadata.name: Required value")
        key = (r.group, r.version, r.plural, ns, meta["name"])
        if key in self.store:
            raise HttpError(409, "AlreadyExists",
                            f'{r.plural} "{meta["name"]}" already exists')
        if r.namespaced:
            meta["namespace"] = ns
        obj.setdefault("apiVersion", r.group_version)
        obj.setdefault("kind", r.kind)
        n = next(self._seq)
        meta.setdefault("uid", f"uid-{n:06d}")
        meta["resourceVersion"] = str(n)
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        self.store[key] = obj
        if run_hooks:
            self._fire("create", r.plural, obj)
        return obj

    def _bump(self, obj: dict) -> None:
        obj["metadata"]["resourceVersion"] = str(next(self._seq))

    def _evict(self, ns: str, name: str) -> dict:
        target = self.store.get(("", "v1", "pods", ns, name))
        if target is None:
            raise HttpError(404, "NotFound", f'pods "{name}" not found')
        labels = target["metadata"].get("labels") or {}
        for (g, v, p, pns, _), budget in sorted(self.store.items()):
            if (g, p) == ("policy", "poddisruptionbudgets") and pns == ns and selector_match(
                    (budget.get("spec") or {}).get("selector"), labels):
                if int((budget.get("status") or {}).get("disruptionsAllowed", 0)) < 1:
                    raise HttpError(429, "TooManyRequests",
                                    "Cannot evict pod as it would violate the pod's disruption "
                                    "budget.")
        del self.store[("", "v1", "pods", ns, name)]
        self._fire("delete", "pods", target)
        return {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}

    # HTTP dispatch (called by the handler with the lock held)
    def handle(self, method: str, path: str, query: dict, body) -> tuple[int, dict]:
        self.requests.append((method, path, query))
        self._tick()
        for f in self.failures:
            if f[0] == method and f[1] == path and f[3] > 0:
                f[3] -= 1
                raise HttpError(f[2], "ServiceUnavailable" if f[2] == 503 else "InternalError",
                                f"injected failure {f[2]}")
        if path == "/version":
            return 200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0-fake"}
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"],
                         "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                         "serverAddress": "127.0.0.1"}]}
        if path == "/apis":
            return 200, self._group_list()
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise HttpError(404, "NotFound", f"the server could not find {path}")
        if not rest:
            return 200, self._resource_list(group, version)
        ns = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            ns, rest = rest[1], rest[2:]
        plural, name = rest[0], (rest[1] if len(rest) > 1 else "")
        sub = rest[2] if len(rest) > 2 else ""
        r = self.resources.get((group, version, plural))
        if r is None:
            raise HttpError(404, "NotFound", f"the server could not find the requested resource ({path})")
        verb = {"GET": "get" if name else "list", "POST": "create", "PUT": "update",
                "PATCH": "patch", "DELETE": "delete"}[method]
        if (verb, f"{plural}/{sub}" if sub else plural) in self.forbidden:
            raise HttpError(403, "Forbidden",
                            f'{plural} is forbidden: User "system:serviceaccount:test:test" '
                            f'cannot {verb} resource "{plural}" in API group "{group}"')
        if sub == "eviction" and plural == "pods" and method == "POST":
            return 201, self._evict(ns, name)
        if sub and sub != "status":
            raise HttpError(404, "NotFound", f"subresource {sub} not supported")
        key = (group, version, plural, ns, name)
        if method == "GET" and not name:
            return 200, self._list(r, ns, query)
        if method == "POST":
            if not isinstance(body, dict):
                raise HttpError(400, "BadRequest", "body must be an object")
            return 201, self._create(r, ns, copy.deepcopy(body))
        obj = self.store.get(key)
        if obj is None:
            raise HttpError(404, "NotFound", f'{plural} "{name}" not found')
        if method == "GET":
            return 200, obj
        if method == "DELETE":
            del self.store[key]
            self._fire("delete", plural, obj)
            return 200, obj
        if method == "PUT":
            new = copy.deepcopy(body)
            new["metadata"] = {**new.get("metadata", {}),
                               **{k: obj["metadata"][k] for k in ("uid", "creationTimestamp")
                                  if k in obj["metadata"]}}
            self.store[key] = new
            self._bump(new)
            self._fire("update", plural, new)
            return 200, new
        # PATCH
        ctype = query.get("_content_type", "")
        new = _json_pointer_apply(obj, body) if "json-patch" in ctype else merge_patch(obj, body)
        self.store[key] = new
        self._bump(new)
        self._fire("patch", plural, new)
        return 200, new

    def _list(self, r: Resource, ns: str, query: dict) -> dict:
        items = [o for (g, v, p, ons, _), o in sorted(self.store.items())
                 if (g, v, p) == (r.group, r.version, r.plural) and (not ns or ons == ns)
                 and label_match(query.get("labelSelector"), o["metadata"].get("labels"))
                 and field_match(query.get("fieldSelector"), o)]
        start = 0
        if query.get("continue"):
            try:
                start = int(base64.b64decode(query["continue"]).decode())
            except (ValueError, UnicodeDecodeError):
                raise HttpError(410, "Expired", "the provided continue parameter is invalid")
        limit = int(query.get("limit") or 0)
        end = start + limit if limit > 0 else len(items)
        meta: dict = {"resourceVersion": str(next(self._seq))}
        if end < len(items):
            meta["continue"] = base64.b64encode(str(end).encode()).decode()
            meta["remainingItemCount"] = len(items) - end
        return {"kind": f"{r.kind}List", "apiVersion": r.group_version, "metadata": meta,
                "items": items[start:end]}

    def _group_list(self) -> dict:
        groups: dict[str, list[str]] = {}
        for (g, v, _) in sorted(self.resources):
            if g and v not in groups.setdefault(g, []):
                groups[g].append(v)
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
             "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}}
            for g, vs in groups.items()]}

    def _resource_list(self, group: str, version: str) -> dict:
        rs = [r for (g, v, _), r in sorted(self.resources.items()) if (g, v) == (group, version)]
        if not rs:
            raise HttpError(404, "NotFound", f"no group version {group}/{version}")
        verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
        out = []
        for r in rs:
            out.append({"name": r.plural, "singularName": r.kind.lower(), "namespaced": r.namespaced,
                        "kind": r.kind, "verbs": verbs})
            for sub in SUBRESOURCES.get(r.plural, []):
                out.append({"name": f"{r.plural}/{sub}", "singularName": "",
                            "namespaced": r.namespaced,
                            "kind": "Eviction" if sub == "eviction" else r.kind,
                            "verbs": ["create"] if sub == "eviction" else ["get", "patch", "update"]})
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": rs[0].group_version, "resources": out}


class _Handler(BaseHTTPRequestHandler):
    kube: FakeKube
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, Nagle + delayed ACK add ~40 ms to
    # every keep-alive request (a paged snapshot makes hundreds of them).
    disable_nagle_algorithm = True

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        query["_content_type"] = self.headers.get("Content-Type", "")
        try:
            token = getattr(self.kube, "token", None)
            if token is not None and self.headers.get("Authorization") != f"Bearer {token}":
                raise HttpError(401, "Unauthorized", "Unauthorized")
            body = json.loads(raw) if raw else None
            with self.kube.lock:
                # Real API servers accept a trailing slash (the client asks for "/apis/").
                code, out = self.kube.handle(method, url.path.rstrip("/") or "/", query, body)
                data = json.dumps(out).encode()
        except HttpError as e:
            code, out = e.code, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                 "status": "Failure", "message": e.message, "reason": e.reason,
                                 "code": e.code}
        except ValueError as e:
            code, out = 400, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                              "message": f"bad request: {e}", "reason": "BadRequest", "code": 400}
        if code >= 400:
            data = json.dumps(out).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_PUT(self):
        self._serve("PUT")

    def do_PATCH(self):
        self._serve("PATCH")

    def do_DELETE(self):
        self._serve("DELETE")


# --- a modelled cluster for the migration runner tests --------------------------------------------
# Old CNI pods get 10.244.<node>.<n> addresses, Cilium pods 10.100.<node>.<n>: a node hands out
# Cilium addresses once it carries the migration label AND its agent restarted after that.
LABEL = "io.cilium.migration/cilium-default"
CILIUM_CIDR = "10.100.0.0/16"
OLD_CIDR = "10.244.0.0/16"
NS = "cni-migration"


class MigrationCluster:
    def __init__(self, kube: FakeKube, nodes=("w1", "w2", "w3"), *, agent_ready_after: int = 2,
                 check_after: int = 2, check_phase: str = "Succeeded"):
        self.kube = kube
        self.seq = itertools.count(10)
        self.switched: set[str] = set()   # nodes whose agent restarted with the label
        self.index = {n: i + 1 for i, n in enumerate(nodes)}
        for n in nodes:
            kube.add(node(n, ip=f"192.168.0.{self.index[n]}"))
            self.add_agent(n)
        kube.on("delete", "pods", self._agent_deleted)
        kube.replace_on_delete(self._is_daemon_pod, ready_after=agent_ready_after,
                               ip_for=lambda p: self.ip_for(p))   # tests may override
        kube.assign_pod_ips(lambda p: self.ip_for(p))
        kube.finish_pods(lambda p: p["metadata"].get("labels", {}).get(
            "app.kubernetes.io/component") == "check-pod", after=check_after, phase=check_phase)

    def add_agent(self, n: str) -> None:
        self.kube.add(pod(f"cilium-{n}", "kube-system", node_name=n, host_network=True,
                          labels={"k8s-app": "cilium"}, owner_kind="DaemonSet",
                          owner_name="cilium", ip=f"192.168.0.{self.index[n]}"))

    def _is_daemon_pod(self, p: dict) -> bool:
        refs = p["metadata"].get("ownerReferences") or []
        return any(r.get("kind") == "DaemonSet" for r in refs)

    def _agent_deleted(self, kube, p: dict) -> None:
        # The restarted agent reads the per-node config: the label decides which CNI it serves.
        if p["metadata"].get("labels", {}).get("k8s-app") != "cilium":
            return
        n = p["spec"]["nodeName"]
        labels = kube.obj("nodes", n)["metadata"].get("labels", {})
        if labels.get(LABEL) == "true":
            self.switched.add(n)
        else:
            self.switched.discard(n)

    def ip_for(self, p: dict) -> str | None:
        n = (p.get("spec") or {}).get("nodeName")
        if not n:
            return None
        prefix = "10.100" if n in self.switched else "10.244"
        return f"{prefix}.{self.index[n]}.{next(self.seq)}"

    def add_app(self, name: str, n: str, *, labels=None, owner="ReplicaSet", ns="default"):
        return self.kube.add(pod(name, ns, node_name=n, labels=labels or {"app": name},
                                 owner_kind=owner, ip=f"10.244.{self.index[n]}.{next(self.seq)}"))

    def pods_on(self, n: str) -> list[dict]:
        return [p for p in self.kube.objects("pods") if p["spec"].get("nodeName") == n]
