"""Which CNI the cluster runs now, how it tunnels, and which CIDRs are in use.

Detection reads only what a snapshot holds: DaemonSets, Deployments, ConfigMaps (the Flannel
net-conf.json the DaemonSet mounts, kubeadm-config), Calico IPPools and FelixConfigurations, the
tigera-operator Installation, and the flags of static control-plane pods. CIDRs in use also
include node addresses and the /24 of any pod IP outside every known pod range, so a missing
export errs towards avoiding more. Defaults follow upstream:
- Flannel VXLAN port: 8472 (Port 0 = kernel default 8472 on Linux), backend type default vxlan.
- calico-node env CALICO_IPV4POOL_IPIP / CALICO_IPV4POOL_VXLAN: unset, "off" or "never" mean
  Never (calico-node startup createIPPool); only used when no IPPool was exported: the IPPools
  are the live truth. The default pool CIDR is kubeadm's podSubnet, else 192.168.0.0/16.
- IPPool ipipMode/vxlanMode default Never; FelixConfiguration vxlanPort default 4789.
- operator Installation ipPools[].encapsulation default IPIP.
"""
from __future__ import annotations

import ipaddress
import json
import socket

from ..errors import UserError, object_name
from ..yamlio import Loaded, load_text
from .model import Cidr, Node, SourceCNI

FLANNEL_VXLAN_PORT = 8472
CALICO_VXLAN_PORT = 4789
CALICO_GROUPS = ("projectcalico.org", "crd.projectcalico.org")
BGP_WARNING = ("Calico routes pods with BGP and no encapsulation: a live migration from "
               "native BGP routing is untested upstream; rehearse it on a copy of the cluster")

_KINDS = frozenset({"DaemonSet", "Deployment", "ConfigMap", "Installation", "IPPool",
                    "FelixConfiguration", "Node", "Pod"})
# Static control-plane pods carry the cluster's ranges as flags (kubeadm, kOps, most distros).
FLAG_CIDRS = {"kube-apiserver": (("--service-cluster-ip-range", "service"),),
              "kube-controller-manager": (("--cluster-cidr", "pod"),
                                          ("--service-cluster-ip-range", "service"))}
FLANNEL_NODE_ANNOTATION = "flannel.alpha.coreos.com/backend-type"


class _Index:
    """The few objects detection needs, found in one pass."""

    def __init__(self, objects: list[Loaded]):
        self.daemonsets: dict[str, Loaded] = {}      # "ns/name"
        self.deployments: dict[str, Loaded] = {}
        self.configmaps: dict[str, Loaded] = {}
        self.installations: list[Loaded] = []
        self.ippools: list[Loaded] = []
        self.felix: list[Loaded] = []
        self.control_plane_pods: list[Loaded] = []
        self.flannel_annotated_nodes = 0   # Flannel writes its backend on every node it runs on
        for item in objects:
            o = item.obj
            kind = o.get("kind")
            if kind not in _KINDS:
                continue
            meta = o.get("metadata") or {}
            # Pods and Nodes first, without the key: a snapshot holds tens of thousands
            if kind == "Pod":
                if meta.get("namespace") == "kube-system" and \
                        (meta.get("labels") or {}).get("component") in FLAG_CIDRS:
                    self.control_plane_pods.append(item)
                continue
            if kind == "Node":
                if FLANNEL_NODE_ANNOTATION in (meta.get("annotations") or {}):
                    self.flannel_annotated_nodes += 1
                continue
            key = f"{meta.get('namespace') or ''}/{meta.get('name')}"
            group = str(o.get("apiVersion") or "").rsplit("/", 1)[0]
            if kind == "DaemonSet":
                self.daemonsets[key] = item
            elif kind == "Deployment":
                self.deployments[key] = item
            elif kind == "ConfigMap":
                self.configmaps[key] = item
            elif kind == "Installation" and group == "operator.tigera.io":
                self.installations.append(item)
            elif kind == "IPPool" and group in CALICO_GROUPS:
                self.ippools.append(item)
            elif kind == "FelixConfiguration" and group in CALICO_GROUPS:
                self.felix.append(item)


def _containers(item: Loaded) -> list[dict]:
    spec = ((item.obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [c for c in spec.get("containers") or [] if isinstance(c, dict)]


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: str(e["value"]) for e in container.get("env") or []
            if isinstance(e, dict) and "name" in e and e.get("value") is not None}


def _ns(key: str) -> str:
    return key.split("/", 1)[0]


# ---- detection ----------------------------------------------------------------------------------

def index(objects: list[Loaded]) -> _Index:
    """The objects detect_cni and collect_cidrs read, for passing to both (one pass)."""
    return _Index(objects)


def detect_cni(objects: list[Loaded], idx: _Index | None = None) -> SourceCNI:
    """The source CNI; UserError when it is unsupported, already Cilium, or not found.
    idx: index(objects), when the caller has it already."""
    idx = _Index(objects) if idx is None else idx
    _refuse_foreign(idx)
    canal = calico_node = None
    flannel: list[str] = []
    for key, item in sorted(idx.daemonsets.items()):
        names = {c.get("name") for c in _containers(item)}
        name = key.split("/", 1)[1]
        if name == "canal" or ("calico-node" in names and names & {"kube-flannel", "flannel"}):
            canal = canal or key
        elif name == "calico-node":
            # the operator's copy lives in calico-system; prefer it over a stale manifest one
            if calico_node is None or _ns(key) == "calico-system":
                calico_node = key
        elif name.startswith("kube-flannel") or "kube-flannel" in names:
            flannel.append(key)   # older manifests ran one DaemonSet per architecture
    if canal:
        return _canal(idx, canal)
    if idx.installations or (calico_node and _ns(calico_node) == "calico-system"):
        return _calico_operator(idx, calico_node)
    if calico_node:
        return _calico_manifest(idx, calico_node)
    if flannel:
        return _flannel(idx, flannel)
    seen = ", ".join(sorted(idx.daemonsets)) or "none"
    hint = ""
    if idx.flannel_annotated_nodes:
        hint = (f"; {idx.flannel_annotated_nodes} nodes carry Flannel annotations but no Flannel "
                "DaemonSet runs: Flannel embedded in k3s/RKE2 is configured by server flags and "
                "cannot be migrated through GitOps")
    raise UserError("no supported CNI found: expected a Flannel (kube-flannel-ds), Canal "
                    "(canal), Calico (calico-node) DaemonSet or a tigera-operator Installation; "
                    f"DaemonSets in the snapshot: {seen}{hint}")


def _refuse_foreign(idx: _Index) -> None:
    for key, item in sorted(idx.daemonsets.items()):
        name = key.split("/", 1)[1]
        images = [str(c.get("image") or "") for c in _containers(item)]
        what = None
        if name == "cilium" or any("/cilium/cilium:" in i or "/cilium/cilium@" in i
                                   for i in images):
            what = ("Cilium is already installed; if this migration is already under way, plan "
                    "from a snapshot taken before Cilium was installed")
        elif name == "weave-net" or any("weaveworks/weave-kube" in i for i in images):
            what = "the cluster runs Weave Net, which is not a supported source CNI"
        elif name == "kube-router" or any("kube-router" in i for i in images):
            what = "the cluster runs kube-router, which is not a supported source CNI"
        if what:
            raise UserError(f"{what} (found DaemonSet {key})", file=item.where)


def _deployments(idx: _Index, names: list[str]) -> list[str]:
    return [k for k in names if k in idx.deployments]


def _flannel_conf(item: Loaded | None) -> dict:
    """net-conf.json of a Flannel/Canal ConfigMap ({} when the ConfigMap was not exported)."""
    if item is None:
        return {}
    text = (item.obj.get("data") or {}).get("net-conf.json")
    if not text:
        return {}
    try:
        conf = json.loads(text)
    except ValueError as e:
        raise UserError(f"net-conf.json is not valid JSON: {e}", file=item.where,
                        obj=object_name(item.obj), field="data.net-conf.json") from None
    if not isinstance(conf, dict):
        raise UserError("net-conf.json is not a JSON object", file=item.where,
                        obj=object_name(item.obj), field="data.net-conf.json")
    return conf


def _flannel_backend(item: Loaded | None, evidence: list[str], warnings: list[str]
                     ) -> tuple[str, int | None]:
    conf = _flannel_conf(item)
    if item is None or not conf:
        warnings.append("Flannel net-conf.json not exported: assumed the default VXLAN backend "
                        f"on UDP {FLANNEL_VXLAN_PORT}")
        return "vxlan", FLANNEL_VXLAN_PORT
    backend = conf.get("Backend") or {}
    btype = str(backend.get("Type") or "vxlan").lower()
    where = f"{object_name(item.obj)} net-conf.json"
    if btype == "vxlan":
        port = backend.get("Port") or FLANNEL_VXLAN_PORT
        try:
            port = int(port)
        except (TypeError, ValueError):
            raise UserError(f"Backend.Port is not a number: {port!r}", file=item.where,
                            obj=object_name(item.obj), field="data.net-conf.json") from None
        evidence.append(f"{where}: Backend vxlan, UDP port {port}")
        return "vxlan", port
    if btype in ("host-gw", "wireguard", "ipip"):
        evidence.append(f"{where}: Backend {btype}")
        warnings.append(f"Flannel runs the {btype} backend: Cilium's migration procedure is "
                        "documented and tested with VXLAN; rehearse on a copy of the cluster")
        return btype, None
    raise UserError(f"unsupported Flannel backend {btype!r} (supported: vxlan, host-gw, "
                    "wireguard, ipip)", file=item.where, obj=object_name(item.obj),
                    field="data.net-conf.json")


def _net_conf_map(idx: _Index, ds: str, default: str) -> Loaded | None:
    """The ConfigMap holding net-conf.json: the one the DaemonSet mounts (RKE2 names it
    rke2-canal-config, for example), else the upstream default name."""
    ns = _ns(ds)
    item = idx.daemonsets[ds]
    spec = ((item.obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    for vol in spec.get("volumes") or []:
        name = ((vol or {}).get("configMap") or {}).get("name")
        cm = idx.configmaps.get(f"{ns}/{name}") if name else None
        if cm and "net-conf.json" in (cm.obj.get("data") or {}):
            return cm
    return idx.configmaps.get(f"{ns}/{default}")


def _flannel(idx: _Index, dss: list[str]) -> SourceCNI:
    ds = dss[0]
    ns = _ns(ds)
    cm = _net_conf_map(idx, ds, "kube-flannel-cfg")
    evidence = [f"DaemonSet {d}" for d in dss]
    warnings: list[str] = []
    if cm:
        evidence.append(f"{object_name(cm.obj)}")
    encap, port = _flannel_backend(cm, evidence, warnings)
    return SourceCNI(kind="flannel", encapsulation=encap, tunnel_port=port, namespace=ns,
                     daemonsets=dss, deployments=[], evidence=evidence, warnings=warnings,
                     enforces_policy=False)


def _canal(idx: _Index, ds: str) -> SourceCNI:
    ns = _ns(ds)
    cm = _net_conf_map(idx, ds, "canal-config")
    evidence = [f"DaemonSet {ds} (calico-node + kube-flannel)"]
    warnings: list[str] = []
    if cm:
        evidence.append(f"{object_name(cm.obj)}")
    encap, port = _flannel_backend(cm, evidence, warnings)
    return SourceCNI(kind="canal", encapsulation=encap, tunnel_port=port, namespace=ns,
                     daemonsets=[ds],
                     deployments=_deployments(idx, [f"{ns}/calico-kube-controllers",
                                                    f"{ns}/calico-typha"]),
                     evidence=evidence, warnings=warnings)


_MODE_ENCAP = {("vxlan", "always"): "vxlan", ("vxlan", "crosssubnet"): "vxlan-crosssubnet",
               ("ipip", "always"): "ipip", ("ipip", "crosssubnet"): "ipip-crosssubnet"}


def _mode(text: str | None) -> str:
    m = str(text or "never").lower().replace("-", "")
    return "never" if m in ("", "off", "never") else m


def _pool_encap(ipip: str | None, vxlan: str | None) -> str:
    v = _mode(vxlan)
    i = _mode(ipip)
    if v != "never":
        return _MODE_ENCAP.get(("vxlan", v), "vxlan")
    if i != "never":
        return _MODE_ENCAP.get(("ipip", i), "ipip")
    return "none"


def _choose_encap(encaps: dict[str, str], evidence: list[str], warnings: list[str]) -> str:
    """One encapsulation for the cluster from pool name -> encapsulation. A VXLAN pool wins
    (its UDP port is what can clash with Cilium), then IPIP, then none."""
    kinds = sorted(set(encaps.values()))
    if len(kinds) > 1:
        warnings.append("IP pools use different encapsulations: " + ", ".join(
            f"{n}={e}" for n, e in sorted(encaps.items())))
    for prefer in ("vxlan", "vxlan-crosssubnet", "ipip", "ipip-crosssubnet", "none"):
        if prefer in kinds:
            return prefer
    return "none"


def _felix_vxlan_port(idx: _Index, node_env: dict[str, str], evidence: list[str]) -> int:
    for item in idx.felix:
        if (item.obj.get("metadata") or {}).get("name") != "default":
            continue
        port = (item.obj.get("spec") or {}).get("vxlanPort")
        if port:
            evidence.append(f"FelixConfiguration default spec.vxlanPort {port}")
            return int(port)
    if node_env.get("FELIX_VXLANPORT"):
        evidence.append(f"calico-node env FELIX_VXLANPORT {node_env['FELIX_VXLANPORT']}")
        return int(node_env["FELIX_VXLANPORT"])
    return CALICO_VXLAN_PORT


BPF_WARNING = ("Calico runs its eBPF dataplane ({where}): kube-proxy is usually removed there, "
               "so Cilium must take over Service handling (kubeProxyReplacement) and the "
               "migration is untested upstream")


def _dataplane_warnings(idx: _Index, warnings: list[str]) -> None:
    for item in idx.felix:
        if (item.obj.get("spec") or {}).get("bpfEnabled") is True:
            warnings.append(BPF_WARNING.format(where=f"{object_name(item.obj)} bpfEnabled"))
            return
    for item in idx.installations:
        net = (item.obj.get("spec") or {}).get("calicoNetwork") or {}
        if str(net.get("linuxDataplane") or "").lower() == "bpf":
            warnings.append(BPF_WARNING.format(
                where=f"{object_name(item.obj)} spec.calicoNetwork.linuxDataplane BPF"))
            return


def _ippool_encaps(idx: _Index) -> dict[str, str]:
    out = {}
    for item in idx.ippools:
        spec = item.obj.get("spec") or {}
        if spec.get("disabled"):
            continue
        ipip = spec.get("ipipMode")
        old = spec.get("ipip")  # pre-v3 form: {enabled: true, mode: always|cross-subnet}
        if ipip is None and isinstance(old, dict) and old.get("enabled", True):
            ipip = "CrossSubnet" if str(old.get("mode", "")).lower() == "cross-subnet" \
                else "Always"
        out[f"IPPool {item.obj['metadata'].get('name')}"] = _pool_encap(
            ipip, spec.get("vxlanMode"))
    return out


def _calico_node_env(idx: _Index, ds: str | None) -> dict[str, str]:
    item = idx.daemonsets.get(ds) if ds else None
    if item is None:
        return {}
    for c in _containers(item):
        if c.get("name") == "calico-node":
            return _env(c)
    return {}


def _calico_manifest(idx: _Index, ds: str) -> SourceCNI:
    ns = _ns(ds)
    evidence = [f"DaemonSet {ds}"]
    warnings: list[str] = []
    env = _calico_node_env(idx, ds)
    encaps = _ippool_encaps(idx)
    if encaps:
        evidence += [f"{n}: {e}" for n, e in sorted(encaps.items())]
    else:
        ipip = env.get("CALICO_IPV4POOL_IPIP", "Never")
        vxlan = env.get("CALICO_IPV4POOL_VXLAN", "Never")
        evidence.append(f"calico-node env CALICO_IPV4POOL_IPIP={ipip} "
                        f"CALICO_IPV4POOL_VXLAN={vxlan} (no IPPool exported)")
        encaps = {"default pool (calico-node env)": _pool_encap(ipip, vxlan)}
    encap = _choose_encap(encaps, evidence, warnings)
    backend = ((idx.configmaps.get(f"{ns}/calico-config") or Loaded({}, "", 0, None)).obj
               .get("data") or {}).get("calico_backend", "bird")
    if encap == "none" and backend != "none":
        warnings.append(BGP_WARNING)
    port = _felix_vxlan_port(idx, env, evidence) if encap.startswith("vxlan") else None
    _dataplane_warnings(idx, warnings)
    return SourceCNI(kind="calico", encapsulation=encap, tunnel_port=port, namespace=ns,
                     daemonsets=[ds],
                     deployments=_deployments(idx, [f"{ns}/calico-kube-controllers",
                                                    f"{ns}/calico-typha"]),
                     evidence=evidence, warnings=warnings)


_OPERATOR_ENCAP = {"ipip": "ipip", "ipipcrosssubnet": "ipip-crosssubnet", "vxlan": "vxlan",
                   "vxlancrosssubnet": "vxlan-crosssubnet", "none": "none"}


def _calico_operator(idx: _Index, ds: str | None) -> SourceCNI:
    ns = "calico-system"
    ds = ds or f"{ns}/calico-node"
    evidence = [f"DaemonSet {ds}"] if ds in idx.daemonsets else []
    warnings: list[str] = []
    encaps = _ippool_encaps(idx)
    bgp_enabled = True
    for item in idx.installations:
        evidence.append(f"Installation {item.obj['metadata'].get('name')} (operator.tigera.io)")
        net = ((item.obj.get("spec") or {}).get("calicoNetwork") or {})
        bgp_enabled = str(net.get("bgp") or "Enabled").lower() != "disabled"
        if encaps:
            continue  # the IPPools the operator created are the live truth
        for i, pool in enumerate(net.get("ipPools") or []):
            raw = str(pool.get("encapsulation") or "IPIP")
            enc = _OPERATOR_ENCAP.get(raw.lower())
            if enc is None:
                raise UserError(f"unknown encapsulation {raw!r}", file=item.where,
                                obj=object_name(item.obj),
                                field=f"spec.calicoNetwork.ipPools[{i}].encapsulation")
            encaps[f"Installation pool {pool.get('name') or i}"] = enc
    if not encaps:
        encaps = {"default pool": "ipip"}
    evidence += [f"{n}: {e}" for n, e in sorted(encaps.items())]
    encap = _choose_encap(encaps, evidence, warnings)
    if encap == "none" and bgp_enabled:
        warnings.append(BGP_WARNING)
    env = _calico_node_env(idx, ds)
    port = _felix_vxlan_port(idx, env, evidence) if encap.startswith("vxlan") else None
    _dataplane_warnings(idx, warnings)
    dss = [k for k in (ds, f"{ns}/csi-node-driver") if k in idx.daemonsets] or [ds]
    return SourceCNI(kind="calico-operator", encapsulation=encap, tunnel_port=port,
                     namespace=ns, daemonsets=dss,
                     deployments=_deployments(idx, ["tigera-operator/tigera-operator",
                                                    f"{ns}/calico-kube-controllers",
                                                    f"{ns}/calico-typha"]),
                     evidence=evidence, warnings=warnings)


# ---- CIDRs --------------------------------------------------------------------------------------

def parse_cluster_configuration(item: Loaded) -> dict | None:
    """The ClusterConfiguration inside a kubeadm-config ConfigMap (None when absent)."""
    text = (item.obj.get("data") or {}).get("ClusterConfiguration")
    if not text:
        return None
    try:
        docs = load_text(text, item.where)
    except UserError as e:
        raise UserError(f"ClusterConfiguration is not valid YAML: {e.message}", file=item.where,
                        obj=object_name(item.obj), field="data.ClusterConfiguration") from None
    return docs[0].obj if docs else None


def _stray_pod_ranges(objects: list[Loaded], nodes: list[Node], known: list[Cidr]) -> list[Cidr]:
    """Pod IPs outside every known pod range (pools not exported, a removed pool still in use):
    their /24 (IPv4) or /64 (IPv6) is reported so the new CIDR keeps clear of them. Linear: each
    IP is checked against the few cluster-wide ranges and its own node's pod CIDRs only."""
    def span(net):  # integer bounds: much cheaper to test than `ip in network`
        return net.version, int(net.network_address), int(net.broadcast_address)

    wide = [span(ipaddress.ip_network(c.cidr)) for c in known
            if c.role in ("pod", "ippool", "flannel") and not c.origin.startswith("node ")]
    # each node's own pod CIDRs after the wide ones: the ranges its pods' IPs are tested against
    ranges = {n.name: wide + [span(ipaddress.ip_network(c, strict=False)) for c in n.pod_cidrs]
              for n in nodes}
    found: dict[str, str] = {}
    for item in objects:
        o = item.obj
        if o.get("kind") != "Pod" or "/" in str(o.get("apiVersion")):
            continue
        spec, status = o.get("spec") or {}, o.get("status") or {}
        if spec.get("hostNetwork"):
            continue  # node addresses, already counted
        ips = [p.get("ip") for p in status.get("podIPs") or [] if isinstance(p, dict)] \
            or [status.get("podIP")]
        for text in ips:
            parsed = _ip_value(text)
            if parsed is None:
                continue
            v, i = parsed
            if any(nv == v and lo <= i <= hi
                   for nv, lo, hi in ranges.get(spec.get("nodeName"), wide)):
                continue
            ip = ipaddress.ip_address(text)
            block = str(ipaddress.ip_network(f"{ip}/{24 if ip.version == 4 else 64}",
                                             strict=False))
            found.setdefault(block, object_name(o))
    return [Cidr(b, f"pod IPs outside every known pod range (e.g. {who})", "pod")
            for b, who in sorted(found.items())]


def _ip_value(text) -> tuple[int, int] | None:
    """(version, integer) of what ipaddress.ip_address(text) accepts, else None. A dotted quad
    as inet_ntop writes it back is parsed by the socket module: ~3x cheaper, and ipaddress
    reads such text the same way (50,000 pod IPs per load)."""
    try:
        packed = socket.inet_pton(socket.AF_INET, text)
    except (OSError, TypeError, ValueError):
        packed = None
    if packed is not None and socket.inet_ntop(socket.AF_INET, packed) == text:
        return 4, int.from_bytes(packed, "big")
    try:
        ip = ipaddress.ip_address(text)
    except (ValueError, TypeError):
        return None
    return ip.version, int(ip)


def _flag_values(container: dict, flag: str) -> list[str]:
    words = [str(w) for w in (container.get("command") or []) + (container.get("args") or [])]
    out = []
    for i, w in enumerate(words):
        if w.startswith(flag + "="):
            out.append(w.split("=", 1)[1])
        elif w == flag and i + 1 < len(words):
            out.append(words[i + 1])
    return out


def _flag_cidrs(idx: _Index) -> list[Cidr]:
    """Ranges from kube-apiserver / kube-controller-manager flags, first pod of each kind."""
    out: list[Cidr] = []
    done: set[str] = set()
    for item in sorted(idx.control_plane_pods, key=lambda i: i.obj["metadata"]["name"]):
        component = item.obj["metadata"]["labels"]["component"]
        if component in done:
            continue  # every control-plane node runs the same flags
        done.add(component)
        name = object_name(item.obj)
        for c in _containers_of_pod(item):
            for flag, role in FLAG_CIDRS[component]:
                for value in _flag_values(c, flag):
                    for part in _split(value):
                        out.append(Cidr(normalise_cidr(part, file=item.where, obj=name,
                                                       field=f"{c.get('name')} {flag}"),
                                        f"{name} {flag}", role))
    return out


def _containers_of_pod(item: Loaded) -> list[dict]:
    return [c for c in (item.obj.get("spec") or {}).get("containers") or []
            if isinstance(c, dict)]


def _calico_pool_unknown(idx: _Index) -> bool:
    """Calico routes pods (calico-node without Flannel beside it) but no pool was exported."""
    if idx.ippools or idx.installations:
        return False
    for item in idx.daemonsets.values():
        names = {c.get("name") for c in _containers(item)}
        if "calico-node" in names and not names & {"kube-flannel", "flannel"}:
            return True
    return False


def normalise_cidr(text, *, file: str | None = None, obj: str | None = None,
                   field: str | None = None) -> str:
    """'10.244.0.0/16' from any valid network text; UserError naming the origin otherwise."""
    try:
        return str(ipaddress.ip_network(str(text).strip(), strict=False))
    except ValueError:
        raise UserError(f"malformed CIDR {text!r}", file=file, obj=obj, field=field) from None


def _split(value) -> list[str]:
    return [p.strip() for p in str(value).split(",") if p.strip()]


def collect_cidrs(objects: list[Loaded], nodes: list[Node], service_cidr_override: str | None,
                  idx: _Index | None = None) -> tuple[list[Cidr], str | None]:
    """Every CIDR in use (pods, services, node addresses, pools) and the service CIDR.
    idx: index(objects), when the caller has it already."""
    out: list[Cidr] = []
    node_files: dict[str, str] | None = None

    def node_file(name: str) -> str | None:
        nonlocal node_files  # built only when an error needs it
        if node_files is None:
            node_files = {(i.obj.get("metadata") or {}).get("name"): i.where
                          for i in objects if i.obj.get("kind") == "Node"}
        return node_files.get(name)

    for n in nodes:
        for j, c in enumerate(n.pod_cidrs):
            try:
                cidr = str(ipaddress.ip_network(c, strict=False))
            except ValueError:
                raise UserError(f"malformed CIDR {c!r}", file=node_file(n.name),
                                obj=f"Node {n.name}", field=f"spec.podCIDRs[{j}]") from None
            out.append(Cidr(cidr, f"node {n.name} spec.podCIDRs", "pod"))
        for a in n.addresses:
            ip = ipaddress.ip_address(a)
            out.append(Cidr(f"{ip}/{ip.max_prefixlen}", f"node {n.name} address", "node"))

    idx = _Index(objects) if idx is None else idx
    for item in idx.ippools:
        spec = item.obj.get("spec") or {}
        name = object_name(item.obj)
        if spec.get("cidr"):
            out.append(Cidr(normalise_cidr(spec["cidr"], file=item.where, obj=name,
                                           field="spec.cidr"), name, "ippool"))
    for item in idx.installations:
        net = (item.obj.get("spec") or {}).get("calicoNetwork") or {}
        for i, pool in enumerate(net.get("ipPools") or []):
            if pool.get("cidr"):
                field = f"spec.calicoNetwork.ipPools[{i}].cidr"
                out.append(Cidr(normalise_cidr(pool["cidr"], file=item.where,
                                               obj=object_name(item.obj), field=field),
                                f"{object_name(item.obj)} {field}", "ippool"))
    calico_env_cidr = False
    for key, item in sorted(idx.daemonsets.items()):
        for c in _containers(item):
            if c.get("name") == "calico-node":
                cidr = _env(c).get("CALICO_IPV4POOL_CIDR")
                if cidr:
                    calico_env_cidr = True
                    out.append(Cidr(normalise_cidr(cidr, file=item.where, obj=f"DaemonSet {key}",
                                                   field="env CALICO_IPV4POOL_CIDR"),
                                    f"DaemonSet {key} env CALICO_IPV4POOL_CIDR", "ippool"))
    for key, item in sorted(idx.configmaps.items()):
        if "net-conf.json" not in (item.obj.get("data") or {}):
            continue  # any Flannel config counts, whatever its name (rke2-canal-config...)
        conf = _flannel_conf(item)
        for fld in ("Network", "IPv6Network"):
            if conf.get(fld):
                out.append(Cidr(normalise_cidr(conf[fld], file=item.where,
                                               obj=object_name(item.obj),
                                               field=f"data.net-conf.json {fld}"),
                                f"ConfigMap {key} net-conf.json {fld}", "flannel"))

    service: list[str] = []
    kubeadm = next((i for k, i in sorted(idx.configmaps.items())
                    if k.endswith("/kubeadm-config")), None)
    conf = parse_cluster_configuration(kubeadm) if kubeadm else None
    if conf:
        net = conf.get("networking") or {}
        origin = f"ConfigMap {kubeadm.obj['metadata'].get('namespace')}/kubeadm-config"
        pod_subnets = _split(net.get("podSubnet") or "")
        for c in pod_subnets:
            out.append(Cidr(normalise_cidr(c, file=kubeadm.where, obj=origin,
                                           field="ClusterConfiguration networking.podSubnet"),
                            f"{origin} networking.podSubnet", "pod"))
        if not service_cidr_override:
            for c in _split(net.get("serviceSubnet") or ""):
                service.append(normalise_cidr(
                    c, file=kubeadm.where, obj=origin,
                    field="ClusterConfiguration networking.serviceSubnet"))
            out += [Cidr(c, f"{origin} networking.serviceSubnet", "service") for c in service]
    flagged = _flag_cidrs(idx)
    out += [c for c in flagged if c.role == "pod"]
    if not service and not service_cidr_override:
        service = sorted({c.cidr for c in flagged if c.role == "service"})
        seen_flags = set()
        for c in flagged:
            if c.role == "service" and c.cidr not in seen_flags:
                seen_flags.add(c.cidr)
                out.append(c)
    if _calico_pool_unknown(idx) and not calico_env_cidr and not (conf or {}).get(
            "networking", {}).get("podSubnet"):
        # calico-node then created its default pool on 192.168.0.0/16: keep clear of it
        out.append(Cidr("192.168.0.0/16", "calico-node default IPv4 pool (assumed: no IPPool "
                                          "exported)", "ippool"))
    if service_cidr_override:
        service = [normalise_cidr(c, field="--service-cidr")
                   for c in _split(service_cidr_override)]
        out += [Cidr(c, "--service-cidr", "service") for c in service]
    if not service:
        # Service CIDR unknown: at least keep every ClusterIP out of the new pod CIDR.
        for item in objects:
            o = item.obj
            if o.get("kind") != "Service" or "/" in str(o.get("apiVersion")):
                continue
            spec = o.get("spec") or {}
            for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
                try:
                    a = ipaddress.ip_address(ip)
                except (ValueError, TypeError):
                    continue  # "None" (headless) or absent
                out.append(Cidr(f"{a}/{a.max_prefixlen}", f"{object_name(o)} clusterIP",
                                "service"))
    out += _stray_pod_ranges(objects, nodes, out)
    # IPv4 first: Cilium's cluster-pool and most consumers want the IPv4 range.
    service.sort(key=lambda c: ipaddress.ip_network(c).version)
    return out, (service[0] if service else None)
