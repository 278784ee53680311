"""Build realistic snapshot directories for tests, one per source CNI.

    from snapshots import make_snapshot          # tests/ is on sys.path under pytest
    snap = make_snapshot(tmp_path, "canal", nodes=6)
    inv = load_snapshot([str(snap)])

The CNI's own objects (DaemonSet, controllers Deployment, ConfigMap) are taken from the real
installation manifests in ../shared/cni-installs (tests may read shared; the product may not),
given a namespace and a "all ready" status as the API server would return them. Nodes, pods,
services and kubeadm-config are generated around them.

cni: "flannel" | "canal" | "calico" (manifest, IPIP) | "calico-vxlan" (manifest, VXLAN
     CrossSubnet) | "calico-operator" (tigera-operator Installation, VXLANCrossSubnet)
nodes: number of nodes; node 0 ("control-plane", tainted) is the control plane, the rest
       ("worker-1".."worker-N") are workers spread over zones. Each node runs one pod of the
       CNI DaemonSet (hostNetwork); each worker runs `pods_per_node` pods "web-<node>-<j>" in
       namespace "shop" (app=web, tier=frontend, ServiceAccount web, named port http/8080,
       owner ReplicaSet). Services: shop/web (10.96.100.10) and default/kubernetes (10.96.0.1).

Also: install_objects(cni) -> list[dict], the CNI's own objects alone (fresh copies).

overrides (all optional):
  cluster_name      kubeadm ClusterConfiguration clusterName (default "test-<cni>"); None omits it
  pod_cidr          cluster pod CIDR (default 10.244.0.0/16, Calico 192.168.0.0/16); nodes get
                    consecutive /24s from it as spec.podCIDRs
  service_cidr      kubeadm serviceSubnet (default 10.96.0.0/12); None omits it
  kubeadm           include kube-system/kubeadm-config (default True)
  node_ip_prefix    InternalIPs count up from <prefix>2 (default "172.18.0.", so 172.18.0.2...)
  zones             zone labels cycled over workers (default ["zone-a", "zone-b"])
  pods_per_node     workload pods per worker in namespace "shop" (default 2)
  flannel_backend   Backend dict for net-conf.json, e.g. {"Type": "vxlan", "Port": 8475}
  encapsulation     Calico manifest IPPool mode: "ipip" | "ipip-crosssubnet" | "vxlan" |
                    "vxlan-crosssubnet" | "none"; for calico-operator the Installation value
                    ("IPIP", "VXLAN", "VXLANCrossSubnet", "IPIPCrossSubnet", "None")
  ippool            export the Calico IPPool object (default True for calico/calico-vxlan)
  vxlan_port        FelixConfiguration default spec.vxlanPort (Calico); omitted by default
  extra_objects     list of extra objects (dicts), written with the others of their kind
  layout            "files" (one List file per kind, default) | "single" (one multi-document
                    file) | "typed" (typed lists, e.g. NodeList, items without kind)
  dirname           name of the snapshot directory (default "snapshot-<cni>")
"""
from __future__ import annotations

import copy
import ipaddress
import json
from functools import lru_cache
from pathlib import Path

import yaml

import os

# as in tests/conftest.py (not imported from there: tests/e2e has a conftest of its own)
SHARED = Path(os.environ.get("CNI_MIGRATE_SHARED",
                             Path(__file__).resolve().parent.parent.parent / "shared"))

INSTALLS = SHARED / "cni-installs"
CNIS = ("flannel", "canal", "calico", "calico-vxlan", "calico-operator")

_MANIFEST = {"flannel": "flannel__kube-flannel.yml", "canal": "calico__canal.yaml",
             "calico": "calico__calico.yaml", "calico-vxlan": "calico__calico-vxlan.yaml",
             "calico-operator": "calico__calico.yaml"}
_KEEP = {"DaemonSet", "Deployment", "ConfigMap", "ServiceAccount", "Namespace",
         "PodDisruptionBudget"}
_MODES = {"ipip": ("Always", "Never"), "ipip-crosssubnet": ("CrossSubnet", "Never"),
          "vxlan": ("Never", "Always"), "vxlan-crosssubnet": ("Never", "CrossSubnet"),
          "none": ("Never", "Never")}


@lru_cache(maxsize=None)
def _install_objects(filename: str) -> tuple:
    """The workload objects of an install manifest (CRDs and RBAC left out), parsed once."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    if not (INSTALLS / filename).is_file():
        import pytest
        pytest.skip(f"reference manifests not found at {INSTALLS}")
    text = (INSTALLS / filename).read_text()
    return tuple(d for d in yaml.load_all(text, Loader=loader)
                 if isinstance(d, dict) and d.get("kind") in _KEEP)


def install_objects(cni: str) -> list[dict]:
    """Deep copies of the install manifest's objects for `cni`, namespaced and 'ready'."""
    out = []
    for obj in copy.deepcopy(list(_install_objects(_MANIFEST[cni]))):
        meta = obj["metadata"]
        if obj["kind"] != "Namespace":
            meta.setdefault("namespace", "kube-system")
        if cni == "calico-operator" and obj["kind"] != "Namespace":
            if obj["kind"] == "ConfigMap":
                continue  # the operator renders its own config
            meta["namespace"] = "calico-system"
        if obj["kind"] == "DaemonSet":
            obj["status"] = {"currentNumberScheduled": 0, "desiredNumberScheduled": 0,
                             "numberReady": 0, "numberAvailable": 0, "observedGeneration": 1}
        elif obj["kind"] == "Deployment":
            obj["status"] = {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1,
                             "updatedReplicas": 1, "observedGeneration": 1}
        out.append(obj)
    return out


def _obj(api: str, kind: str, name: str, ns: str | None = None, **rest) -> dict:
    meta = {"name": name}
    if ns:
        meta["namespace"] = ns
    labels = rest.pop("labels", None)
    if labels:
        meta["labels"] = labels
    return {"apiVersion": api, "kind": kind, "metadata": meta, **rest}


def make_snapshot(tmp_path, cni: str, nodes: int = 4, **overrides) -> Path:
    """Write a snapshot directory for `cni` under tmp_path and return its path."""
    if cni not in CNIS:
        raise ValueError(f"unknown cni {cni!r}; one of {CNIS}")
    o = dict(overrides)
    calico = cni.startswith("calico")
    pod_cidr = o.get("pod_cidr", "192.168.0.0/16" if calico else "10.244.0.0/16")
    service_cidr = o.get("service_cidr", "10.96.0.0/12")
    ip_prefix = o.get("node_ip_prefix", "172.18.0.")
    zones = o.get("zones", ["zone-a", "zone-b"])
    per_node = o.get("pods_per_node", 2)
    out = Path(tmp_path) / o.get("dirname", f"snapshot-{cni}")
    out.mkdir(parents=True, exist_ok=True)

    cni_objs = install_objects(cni)
    ds = next(x for x in cni_objs if x["kind"] == "DaemonSet")
    for x in cni_objs:
        if x["kind"] == "DaemonSet":
            x["status"].update(currentNumberScheduled=nodes, desiredNumberScheduled=nodes,
                               numberReady=nodes, numberAvailable=nodes)
        if x["kind"] == "ConfigMap" and "net-conf.json" in x.get("data", {}):
            conf = {"Network": pod_cidr,
                    "Backend": o.get("flannel_backend", {"Type": "vxlan"})}
            x["data"]["net-conf.json"] = json.dumps(conf, indent=2) + "\n"

    by_kind: dict[str, list[dict]] = {}

    def add(obj):
        by_kind.setdefault(obj["kind"], []).append(obj)

    for x in cni_objs:
        add(x)

    subnets = ipaddress.ip_network(pod_cidr).subnets(new_prefix=24)
    node_names = []
    for i in range(nodes):
        name = "control-plane" if i == 0 else f"worker-{i}"
        node_names.append(name)
        node_ip = str(ipaddress.ip_address(ip_prefix + "0") + i + 2)  # rolls over octets
        labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                  "kubernetes.io/arch": "amd64"}
        taints = []
        if i == 0:
            labels["node-role.kubernetes.io/control-plane"] = ""
            taints = [{"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"}]
        else:
            labels["topology.kubernetes.io/zone"] = zones[(i - 1) % len(zones)]
        cidr = str(next(subnets))
        spec = {"podCIDR": cidr, "podCIDRs": [cidr]}
        if taints:
            spec["taints"] = taints
        add(_obj("v1", "Node", name, labels=labels, spec=spec, status={
            "addresses": [{"address": node_ip, "type": "InternalIP"},
                          {"address": name, "type": "Hostname"}],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}))
        ds_meta = ds["metadata"]
        add(_obj("v1", "Pod", f"{ds_meta['name']}-{i:05d}", ds_meta["namespace"],
                 labels=dict(ds["spec"]["selector"]["matchLabels"]),
                 spec={"nodeName": name, "hostNetwork": True,
                       "serviceAccountName": ds["spec"]["template"]["spec"].get(
                           "serviceAccountName", "default"),
                       "containers": [{"name": c["name"], "image": c["image"]}
                                      for c in ds["spec"]["template"]["spec"]["containers"]]},
                 status={"phase": "Running", "podIP": node_ip,
                         "podIPs": [{"ip": node_ip}]}))
        if i == 0:
            continue
        hosts = ipaddress.ip_network(cidr).hosts()
        next(hosts)  # .1 is the gateway on Flannel/Canal
        for j in range(per_node):
            ip = str(next(hosts))
            add(_obj("v1", "Pod", f"web-{i}-{j}", "shop",
                     labels={"app": "web", "tier": "frontend"},
                     spec={"nodeName": name, "serviceAccountName": "web",
                           "containers": [{"name": "web", "image": "nginx:1.27",
                                           "ports": [{"name": "http", "containerPort": 8080,
                                                      "protocol": "TCP"}]}]},
                     status={"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}))
    for p in by_kind.get("Pod", []):
        if p["metadata"]["namespace"] == "shop":
            p["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                 "name": "web-7d9f8b6c5d", "controller": True,
                                                 "uid": "00000000-0000-0000-0000-000000000001"}]
        else:
            p["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                                                 "name": ds["metadata"]["name"],
                                                 "controller": True}]

    for ns in ("default", "kube-system", "shop") + (("calico-system", "tigera-operator")
                                                     if cni == "calico-operator" else ()):
        if not any(n["metadata"]["name"] == ns for n in by_kind.get("Namespace", [])):
            add(_obj("v1", "Namespace", ns,
                     labels={"kubernetes.io/metadata.name": ns}))
    add(_obj("v1", "ServiceAccount", "web", "shop"))
    add(_obj("v1", "Service", "web", "shop", spec={
        "selector": {"app": "web"}, "clusterIP": "10.96.100.10", "clusterIPs": ["10.96.100.10"],
        "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}))
    add(_obj("v1", "Service", "kubernetes", "default", spec={
        "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
        "ports": [{"name": "https", "port": 443, "targetPort": 6443, "protocol": "TCP"}]}))

    if o.get("kubeadm", True):
        networking = {"dnsDomain": "cluster.local", "podSubnet": pod_cidr}
        if service_cidr:
            networking["serviceSubnet"] = service_cidr
        cc = {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration",
              "kubernetesVersion": "v1.31.2", "networking": networking}
        name = o.get("cluster_name", f"test-{cni}")
        if name:
            cc["clusterName"] = name
        add(_obj("v1", "ConfigMap", "kubeadm-config", "kube-system",
                 data={"ClusterConfiguration": yaml.safe_dump(cc, sort_keys=True)}))

    if cni in ("calico", "calico-vxlan") and o.get("ippool", True):
        enc = o.get("encapsulation", "ipip" if cni == "calico" else "vxlan-crosssubnet")
        ipip, vxlan = _MODES[enc]
        add(_obj("crd.projectcalico.org/v1", "IPPool", "default-ipv4-ippool", spec={
            "cidr": pod_cidr, "blockSize": 26, "ipipMode": ipip, "vxlanMode": vxlan,
            "natOutgoing": True, "nodeSelector": "all()"}))
    if cni == "calico-operator":
        add(_obj("operator.tigera.io/v1", "Installation", "default", spec={"calicoNetwork": {
            "ipPools": [{"name": "default-ipv4-ippool", "blockSize": 26, "cidr": pod_cidr,
                         "encapsulation": o.get("encapsulation", "VXLANCrossSubnet"),
                         "natOutgoing": "Enabled", "nodeSelector": "all()"}]}}))
        add(_obj("apps/v1", "Deployment", "tigera-operator", "tigera-operator",
                 spec={"replicas": 1, "selector": {"matchLabels": {"name": "tigera-operator"}},
                       "template": {"metadata": {"labels": {"name": "tigera-operator"}},
                                    "spec": {"hostNetwork": True, "containers": [{
                                        "name": "tigera-operator",
                                        "image": "quay.io/tigera/operator:v1.38.0"}]}}}))
    if calico and o.get("vxlan_port"):
        add(_obj("crd.projectcalico.org/v1", "FelixConfiguration", "default",
                 spec={"vxlanPort": o["vxlan_port"]}))
    for x in o.get("extra_objects", ()):
        add(copy.deepcopy(x))

    _write(out, by_kind, o.get("layout", "files"))
    return out


_FILES = {"Node": "nodes", "Namespace": "namespaces", "Pod": "pods", "Service": "services",
          "ServiceAccount": "serviceaccounts", "DaemonSet": "daemonsets",
          "Deployment": "deployments", "ConfigMap": "configmaps",
          "PodDisruptionBudget": "poddisruptionbudgets"}


def _write(out: Path, by_kind: dict[str, list[dict]], layout: str) -> None:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    dump = lambda d: yaml.dump(d, Dumper=dumper, sort_keys=True,  # noqa: E731
                               default_flow_style=False)
    if layout == "single":
        docs = [x for k in sorted(by_kind) for x in by_kind[k]]
        (out / "all.yaml").write_text(yaml.dump_all(docs, Dumper=dumper, sort_keys=True))
        return
    for kind in sorted(by_kind):
        items = by_kind[kind]
        name = _FILES.get(kind, kind.lower() + "s")
        if layout == "typed":
            api = items[0]["apiVersion"]
            same = [x for x in items if x["apiVersion"] == api]
            rest = [x for x in items if x["apiVersion"] != api]
            doc = {"apiVersion": api, "kind": f"{kind}List", "metadata": {"resourceVersion": "1"},
                   "items": [{k: v for k, v in x.items() if k not in ("apiVersion", "kind")}
                             for x in same]}
            text = dump(doc)
            if rest:
                text += "---\n" + dump({"apiVersion": "v1", "kind": "List", "items": rest})
        else:
            text = dump({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
                         "items": items})
        (out / f"{name}.yaml").write_text(text)
