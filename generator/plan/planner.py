"""make_plan(inventory, options) -> Plan: the ordered waves of the migration (pure, no I/O).

Order (design/migration.md): preflight, cilium-install (migration mode), nodeconfig (a
CiliumNodeConfig selecting no node yet: Cilium's CRDs exist only once the operator runs), node
batches (a canary worker, then batches spread across zones, control-plane nodes last), policies,
final-values, nodeconfig-removal, old-cni-removal (the point of no return).

Each wave is one commit and one pull request; its rollback is `git revert` unless it says
otherwise.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict

from ..errors import UserError
from ..listing import LIMIT, some
from . import network
from ..inventory.model import Inventory, Node
from ..cilium.values import chart_version, node_config_api_version
from .model import SUPPORTED_CILIUM, Options, Plan, Tunnel, Wave

MIGRATION_LABEL = "io.cilium.migration/cilium-default"

# Duration model (minutes). Per node: drain (PDB-bound, typically 1-3 min), agent restart
# (~1 min), pod re-creation and check pod (~1 min). The field figure "5 nodes in about 5 minutes
# of disruptive steps" excludes draining; we budget 4 minutes per node, nodes one after another.
PER_NODE_MIN = 4
WAVE_OVERHEAD_MIN = 5       # Git sync, Job scheduling, validation Job
ROLLOUT_PER_NODE_MIN = 0.5  # a DaemonSet rollout (max 2 unavailable) per node


def _cni_word(inv: Inventory) -> str:
    return {"flannel": "Flannel", "canal": "Canal", "calico": "Calico",
            "calico-operator": "Calico (tigera-operator)"}.get(inv.cni.kind, inv.cni.kind)


# ------------------------------------------------------------------------------ options

def parse_batch_size(text: str, workers: int) -> int:
    """'N' nodes or 'P%' of workers -> nodes per batch (at least 1)."""
    t = str(text).strip()
    try:
        if t.endswith("%"):
            pct = float(t[:-1])
            if not 0 < pct <= 100:
                raise ValueError
            return max(1, math.ceil(workers * pct / 100))
        n = int(t)
        if n < 1:
            raise ValueError
        return n
    except ValueError:
        raise UserError(f"invalid batch size {text!r}: give a node count (e.g. 3) or a percentage "
                        "of workers (e.g. 25%)", field="--batch-size") from None


def check_options(options: Options) -> None:
    if options.engine not in ("argocd", "flux"):
        raise UserError(f"unknown engine {options.engine!r}: choose argocd or flux",
                        field="--engine")
    if options.cilium_version not in SUPPORTED_CILIUM:
        raise UserError(f"unsupported Cilium version {options.cilium_version!r}: choose one of "
                        f"{', '.join(SUPPORTED_CILIUM)}", field="--cilium-version")
    if not 16 <= options.cilium_pod_cidr_mask <= 28:
        raise UserError(f"per-node mask /{options.cilium_pod_cidr_mask} out of range 16-28",
                        field="cilium_pod_cidr_mask")
    parse_batch_size(options.batch_size, 1)
    chart_version(options.cilium_version, options.cilium_chart_version)


# ------------------------------------------------------------------------------ network

def _network(inv: Inventory, options: Options) -> tuple[str, str, Tunnel, list[str]]:
    """CIDR, reason, tunnel and warnings (generator/plan/network.py decides)."""
    cidr, reason = network.choose_pod_cidr(inv, options.cilium_pod_cidr,
                                           mask=options.cilium_pod_cidr_mask)
    return str(cidr), str(reason), network.choose_tunnel(inv), []


# ------------------------------------------------------------------------------ batching

def _zone_round_robin(nodes: list[Node]) -> list[Node]:
    """Nodes interleaved zone by zone (zones sorted, nodes sorted by name inside a zone), so that
    consecutive nodes, and therefore each batch, spread across zones."""
    by_zone: dict[str, list[Node]] = {}
    for n in sorted(nodes, key=lambda n: n.name):
        by_zone.setdefault(n.zone or "", []).append(n)
    queues = [by_zone[z] for z in sorted(by_zone)]
    out: list[Node] = []
    i = 0
    while any(queues):
        q = queues[i % len(queues)]
        if q:
            out.append(q.pop(0))
        i += 1
    return out


def node_batches(inv: Inventory, options: Options) -> list[tuple[str, list[str]]]:
    """[(kind, node names)]: kind is "canary", "workers" or "control-plane"."""
    workers = [n for n in inv.nodes if not n.control_plane]
    control = sorted((n for n in inv.nodes if n.control_plane), key=lambda n: n.name)
    ordered = _zone_round_robin(workers)
    size = parse_batch_size(options.batch_size, len(workers))
    batches: list[tuple[str, list[str]]] = []
    if ordered and options.canary:
        batches.append(("canary", [ordered.pop(0).name]))
    for i in range(0, len(ordered), size):
        batches.append(("workers", [n.name for n in ordered[i:i + size]]))
    # Control-plane nodes last, all in one wave: its Job switches them one after the other so
    # at most one API server / etcd member is down at a time.
    if control:
        batches.append(("control-plane", [n.name for n in _zone_round_robin(control)]))
    return batches


# ------------------------------------------------------------------------------ autodetection

SAFE_METHODS = ("kubernetes-internal-ip", "interface=", "cidr=")


def _daemonset(inv: Inventory, ref: str) -> dict | None:
    ns, _, name = ref.partition("/")
    for l in inv.objects:
        m = l.obj.get("metadata") or {}
        if l.obj.get("kind") == "DaemonSet" and m.get("namespace") == ns and m.get("name") == name:
            return l.obj
    return None


def autodetection_pinned(inv: Inventory) -> str | None:
    """Why Calico's node address autodetection cannot pick cilium_host already, or None when it
    can (catalogue 1) or when we cannot tell."""
    if inv.cni.kind == "calico-operator":
        for l in inv.objects:
            if l.obj.get("kind") == "Installation":
                auto = (((l.obj.get("spec") or {}).get("calicoNetwork") or {})
                        .get("nodeAddressAutodetectionV4") or {})
                if auto.get("kubernetes") or auto.get("interface") or auto.get("cidrs") or \
                        "cilium" in str(auto.get("skipInterface") or ""):
                    return f"Installation nodeAddressAutodetectionV4 is {auto}"
        return None
    methods = []
    for ref in sorted(inv.cni.daemonsets):
        ds = _daemonset(inv, ref) or {}
        containers = (((ds.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
            "containers") or []
        env = {e.get("name"): e.get("value") for c in containers if c.get("name") == "calico-node"
               for e in c.get("env") or []}
        method = env.get("IP_AUTODETECTION_METHOD") or ""
        if not (method.startswith(SAFE_METHODS) or
                (method.startswith("skip-interface=") and "cilium" in method)):
            return None
        methods.append(f"{ref}: IP_AUTODETECTION_METHOD={method}")
    return "; ".join(methods) or None


# ------------------------------------------------------------------------------ waves

def _enforcement_gap(inv: Inventory) -> str:
    if not inv.cni.enforces_policy:
        return ""
    return (" Enforcement gap: pods on switched nodes are no longer Calico endpoints and Cilium "
            "enforces nothing until final-values; Calico still enforces on unswitched nodes.")


def _named(nodes: list[str]) -> str:
    """': a, b, c' or, for a long list, ' 1246 nodes: a, b, ... and 1196 more (...)'."""
    if len(nodes) <= LIMIT:
        return ": " + ", ".join(nodes)
    return f" {len(nodes)} nodes: " + some(nodes, where="one file each in this wave's s1-change/")


def _node_wave(number: int, index: int, kind: str, nodes: list[str], worker_i: int,
               workers_total: int, zone_of: dict[str, str | None]) -> Wave:
    zones = sorted({zone_of[n] or "-" for n in nodes})
    title = {"canary": f"canary node {nodes[0]}",
             "workers": f"node batch {worker_i}/{workers_total} ({len(nodes)} "
                        f"node{'s' if len(nodes) > 1 else ''})",
             "control-plane": f"control-plane nodes ({len(nodes)})"}[kind]
    risk = {"canary": "medium", "workers": "medium", "control-plane": "high"}[kind]
    changes = [
        f"label {MIGRATION_LABEL}=true on{_named(nodes)} (zones: {', '.join(zones)})",
        "per node, one after the other: cordon; drain through the eviction API (PodDisruption"
        "Budgets honoured); restart the node's Cilium agent so it reads the CiliumNodeConfig; "
        "re-create the pods left on the node (DaemonSet pods included) so they get Cilium "
        f"addresses in the new CIDR; check a pod pinned to the node; uncordon",
    ]
    if kind == "control-plane":
        changes.append("control-plane nodes last and one at a time: at most one API server and "
                       "one etcd member away at once")
    gates = [
        "runner Job: each node labelled, its agent Ready with the per-node config, pods "
        "re-created, node uncordoned",
        "validation Job: probes on switched and unswitched nodes reach each other, the probe "
        "Service and DNS; no pod on these nodes keeps an old-CNI address",
    ]
    rollback = (f"Merge branch rollback/wave-{number:02d}: its Job removes the label from "
                "these nodes, restarts their Cilium agents and re-creates their pods on the old "
                "CNI. A plain `git revert` does NOT unlabel the nodes (Node manifests are never "
                "pruned) and leaves their pods on Cilium. Not fully automatic: the switch "
                "renamed the old CNI's config (cni-exclusive) and Cilium's "
                "05-cilium.conflist stays (cni.uninstall false); if the rollback check reports "
                "it, remove that file on the node and restart the old CNI's pod there.")
    return Wave(number=number, key=f"nodes-{index:02d}", title=title, changes=changes,
                gates=gates, risk=risk,
                est_minutes=WAVE_OVERHEAD_MIN + PER_NODE_MIN * len(nodes), rollback=rollback,
                nodes=list(nodes))


def _selector_matches(sel: dict, labels: dict) -> bool:
    """A Kubernetes LabelSelector against labels (an empty selector matches everything)."""
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        key, op, vals = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(key) not in vals:
            return False
        if op == "NotIn" and key in labels and labels[key] in vals:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _unprotected_statefulsets(inv: Inventory) -> list[str]:
    """StatefulSets whose pods no PodDisruptionBudget covers: draining nodes one after the other
    can take several replicas of a quorum system down (catalogue 4)."""
    pdbs: dict[str, list[dict]] = {}
    for p in inv.pdbs:
        ns = (p.get("metadata") or {}).get("namespace") or "default"
        pdbs.setdefault(ns, []).append((p.get("spec") or {}).get("selector") or {})
    out = set()
    for pod in inv.pods:
        if pod.owner_kind != "StatefulSet":
            continue
        if not any(_selector_matches(sel, pod.labels) for sel in pdbs.get(pod.namespace, [])):
            out.add(f"{pod.namespace}/{pod.owner_name}")
    return sorted(out)


def make_plan(inventory: Inventory, options: Options) -> Plan:
    inv = inventory
    check_options(options)
    if not inv.nodes:
        raise UserError("the snapshot holds no Node: nothing to migrate", file=inv.source)
    cidr, cidr_reason, tunnel, warnings = _network(inv, options)
    warnings = list(inv.cni.warnings) + warnings
    cni = _cni_word(inv)
    n_nodes = len(inv.nodes)
    calico_like = inv.cni.kind in ("calico", "canal", "calico-operator")
    gap = _enforcement_gap(inv)

    waves: list[Wave] = []

    def add(**kw) -> Wave:
        w = Wave(number=len(waves), **kw)
        waves.append(w)
        return w

    add(key="preflight", title="preflight checks (read-only)",
        changes=[f"create namespace {options.namespace}, the migration's ServiceAccounts/RBAC, "
                 "runner scripts ConfigMap",
                 "run a read-only preflight Job: nothing in the cluster changes"],
        gates=[f"new pod CIDR {cidr} overlaps no pod, service, node or IP pool CIDR",
               f"every node Ready; {cni} DaemonSets fully available",
               "no PodDisruptionBudget forbids every eviction (a drain would hang)"],
        risk="low", est_minutes=WAVE_OVERHEAD_MIN,
        rollback="`git revert`: removes the namespace and RBAC; nothing else was changed.")

    install_changes = []
    pinned = autodetection_pinned(inv) if calico_like else None
    if pinned:
        install_changes.append(f"Calico's node address autodetection is already safe from "
                               f"Cilium's cilium_host interface ({pinned}): left as it is")
    elif calico_like:
        install_changes.append(
            "first, pin Calico's node address autodetection to the Kubernetes node InternalIP "
            "(IP_AUTODETECTION_METHOD=kubernetes-internal-ip, or the Installation's "
            "nodeAddressAutodetectionV4: kubernetes: NodeInternalIP): otherwise calico-node "
            "picks Cilium's cilium_host interface and goes NotReady cluster-wide (catalogue 1)")
    install_changes += [
        f"install Cilium {options.cilium_version} in migration mode next to {cni}: "
        f"{tunnel.protocol} tunnel on UDP {tunnel.port}, pod CIDR {cidr}, "
        "cni.customConf=true (no CNI config written), policyEnforcementMode=never, "
        "operator.unmanagedPodWatcher.restart=false, bpf.hostLegacyRouting=true",
        "Hubble certificates made by a CronJob in the cluster (not minted at render time)",
        "deploy the probe DaemonSet (agnhost) on every node, still on the old CNI",
    ]
    add(key="cilium-install", title=f"install Cilium {options.cilium_version} (migration mode)",
        changes=install_changes,
        gates=["Cilium agents Ready on every node and the operator available",
               f"{cni} still Ready on every node; no pod changed address",
               "probe pods reach each other across all nodes"],
        risk="medium",
        est_minutes=int(WAVE_OVERHEAD_MIN + 5 + ROLLOUT_PER_NODE_MIN * n_nodes),
        rollback="`git revert`, then uninstall the Cilium release by hand (the Argo CD "
                 "Application / Flux HelmRelease is never pruned automatically, so no sync can "
                 "remove a CNI by accident). No pod uses Cilium yet. The autodetection pin can "
                 "stay.")

    cnc_api = node_config_api_version(options.cilium_version)
    add(key="nodeconfig", title="CiliumNodeConfig (selects no node yet)",
        changes=[f"CiliumNodeConfig kube-system/cilium-default ({cnc_api}) selecting nodes "
                 f"labelled {MIGRATION_LABEL}=true: none is labelled yet, so nothing changes",
                 "sets write-cni-conf-when-ready, custom-cni-conf=false, cni-chaining-mode=none, "
                 "cni-exclusive=true for the nodes switched later"],
        gates=["the CiliumNodeConfig exists (the operator registered the CRD)",
               f"no node carries {MIGRATION_LABEL} yet"],
        risk="low", est_minutes=WAVE_OVERHEAD_MIN,
        rollback="`git revert`: deletes the CiliumNodeConfig; no node reads it yet.")

    batches = node_batches(inv, options)
    zone_of = {n.name: n.zone for n in inv.nodes}
    workers_total = sum(1 for k, _ in batches if k == "workers")
    worker_i = 0
    for i, (kind, nodes) in enumerate(batches, start=1):
        if kind == "workers":
            worker_i += 1
        w = _node_wave(len(waves), i, kind, nodes, worker_i, workers_total, zone_of)
        if gap:
            w.changes.append(gap.strip())
        waves.append(w)
    if not any(k == "canary" for k, _ in batches):
        warnings.append("no worker node: the first node wave is a control-plane node "
                        "(the guide advises against starting with one)")

    has_policy = bool(inv.policy_objects)
    add(key="policies", title="Cilium network policies (not enforced yet)",
        changes=(["create the Cilium policies translated from the source policies; "
                  "policyEnforcementMode is still never, so nothing is enforced yet"]
                 if has_policy else
                 ["the source has no network policy: nothing to translate, no Cilium policy "
                  "created"]),
        gates=["by hand: no policy import error in the Cilium agent logs (Cilium reports invalid "
               "policies only there); the final-values probe Job exercises the policies"]
        if has_policy else ["none: the wave only records that there is no policy"],
        risk="low", est_minutes=WAVE_OVERHEAD_MIN,
        rollback="`git revert`: deletes the Cilium policies; nothing enforces them yet.")

    add(key="final-values", title="final Cilium values (enforcement on)",
        changes=["edit cilium/values.yaml: cni.customConf false, "
                 "operator.unmanagedPodWatcher.restart true, policyEnforcementMode default "
                 "(a three-line diff)",
                 "restart the Cilium agents (rolling) so they take the new configuration",
                 "from here Cilium enforces the translated policies"
                 + (" and Calico no longer does (every node is switched)" if calico_like else "")],
        gates=["Cilium agents Ready with policy-enforcement default and custom-cni-conf false",
               "probe connectivity across all nodes, Service and DNS"],
        risk="high",
        est_minutes=int(WAVE_OVERHEAD_MIN + 5 + ROLLOUT_PER_NODE_MIN * n_nodes),
        rollback="`git revert` restores migration mode (enforcement never); the agents restart "
                 "again. Revertible while the old CNI is still installed.")

    add(key="nodeconfig-removal", title="remove the CiliumNodeConfig",
        changes=["delete CiliumNodeConfig kube-system/cilium-default: the final values now "
                 "carry the same settings for every node",
                 f"node labels {MIGRATION_LABEL} stay (harmless; never pruned)"],
        gates=["Cilium agents still Ready; probe connectivity unchanged"],
        risk="low", est_minutes=WAVE_OVERHEAD_MIN,
        rollback="`git revert` re-creates the CiliumNodeConfig.")

    old = sorted(inv.cni.daemonsets) + sorted(inv.cni.deployments)
    add(key="old-cni-removal", title=f"remove {cni} (point of no return)",
        changes=[f"delete the old CNI: {', '.join(old) if old else 'its DaemonSets and controllers'}"
                 + ("; its CRDs / operator objects" if calico_like else ""),
                 "old iptables rules and interfaces stay until each node reboots: plan a rolling "
                 "reboot after this wave"],
        gates=["the old CNI's pods are gone; Cilium agents Ready; probe connectivity, Service "
               "and DNS unchanged"],
        risk="irreversible", est_minutes=int(WAVE_OVERHEAD_MIN + ROLLOUT_PER_NODE_MIN * n_nodes),
        rollback=f"Not revertible: reverting the commit does not reinstall {cni}. Restoring "
                 f"it means reinstalling {cni} from its own manifests and migrating back.",
        reversible=False, needs_approval=True)

    if calico_like and inv.cni.encapsulation == "none":
        warnings.append("Calico BGP without encapsulation: the migration is untested upstream")
    v6 = sorted({c.cidr for c in inv.cidrs if ":" in c.cidr and c.role in ("pod", "ippool",
                                                                           "flannel")})
    if v6:
        warnings.append(f"IPv6 pod CIDRs in use ({', '.join(v6)}): this plan gives Cilium an "
                        "IPv4 pool only; dual-stack pods would lose their IPv6 address")
    if options.repo_url == Options.repo_url:
        warnings.append(f"--repo-url not given: the GitOps objects point at the placeholder "
                        f"{options.repo_url}")
    unprotected = _unprotected_statefulsets(inv)
    if unprotected:
        shown = ", ".join(unprotected[:5]) + (f" and {len(unprotected) - 5} more"
                                              if len(unprotected) > 5 else "")
        warnings.append(f"StatefulSets without a PodDisruptionBudget: {shown}; node drains may "
                        "take several replicas down at once (add PDBs or scale quorum systems "
                        "first)")
    if inv.cni.enforces_policy and has_policy:
        warnings.append("enforcement gap from the first node wave to final-values: pods on "
                        "switched nodes are enforced by neither Calico nor Cilium (field practice: "
                        "a temporary allow-all bridge policy)")

    return Plan(options=options, cluster_name=inv.cluster_name, source_cni=inv.cni.kind,
                cilium_pod_cidr=cidr, cidr_reason=cidr_reason, tunnel=tunnel, waves=waves,
                warnings=warnings, input_digest=_digest(inv, options))


def _digest(inv: Inventory, options: Options) -> str:
    opts = json.dumps(asdict(options), sort_keys=True)
    return hashlib.sha256(f"{inv.digest}\0{opts}".encode()).hexdigest()
