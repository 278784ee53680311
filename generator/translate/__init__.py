"""Calico policies -> Cilium policies, keeping every verdict or saying where it cannot.

    translate(policy_set, *, cilium_version="1.19", approximate=False, inventory=None)
        -> Translation(objects, report, helm_values)

Safety choice: when a *rule* cannot be expressed exactly, the policy is reported
`untranslatable` and the output only errs towards *less* access: the subject keeps Cilium's
default deny, inexpressible Allow rules are left out, inexpressible Deny rules are enforced on a
superset (by default deny and by narrowing every later allow), and address denies that reach
into pod/node ranges also deny the cluster entity. Emitting nothing for a policy that held
denies would widen, so its exact parts and its default deny are always emitted.
When the policy's own *selector* cannot be expressed (a filtered label, a substring match with
no inventory...), enforcing it on a superset would isolate unrelated endpoints (a selector on
`kubernetes.io/os` becomes "every pod": a cluster-wide outage), so that policy is refused
instead: nothing is emitted for it and the report says its endpoints lose its isolation.
`approximate=True` emits the nearest wider rule instead of refusing a rule, each one reported.

Assumptions (reported where they matter): Calico `nets` and network sets do not cover pod/node
ranges unless the inventory (or, without one, the private ranges) says they may; HostEndpoint
labels are the Node's labels (host policies are approximate); hosts without a declared
HostEndpoint are not Calico endpoints; ties between equal orders break by name.
Felix matches rule selectors against IP sets, so a notSelector (and a namespaceSelector term
that matches absent labels) also matches hosts, outside addresses and global network sets:
those become entities and CIDRs (with excepts), never a pods-only peer.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..calico.model import PolicySet
from ..cilium import model as cm
from .compile import compile_policies
from .emit import Emitter, emittable
from .ranges import ClusterRanges
from .report import FidelityReport, Finding, PolicyReport
from .selectors import NS_KEY, NSL_PREFIX


@dataclass
class Translation:
    objects: list[dict] = field(default_factory=list)
    report: FidelityReport = field(default_factory=FidelityReport)
    helm_values: dict = field(default_factory=dict)


def _label_values(inventory) -> dict | None:
    """Cilium key -> live values, to expand contains/starts with/ends with."""
    if inventory is None:
        return None
    vals: dict[str, set] = {}
    for pod in inventory.pods:
        for k, v in pod.labels.items():
            vals.setdefault(k, set()).add(v)
        vals.setdefault(NS_KEY, set()).add(pod.namespace)
    for ns in inventory.namespaces:
        vals.setdefault(NS_KEY, set()).add(ns.name)
        for k, v in ns.labels.items():
            vals.setdefault(NSL_PREFIX + k, set()).add(v)
    return {k: sorted(v) for k, v in vals.items()}


def _knp_index(ps: PolicySet) -> dict:
    """(namespace, name) -> the raw NetworkPolicy (the first one, as a scan would find)."""
    out: dict = {}
    for obj in ps.k8s_policies:
        meta = obj.get("metadata") or {}
        out.setdefault((meta.get("namespace"), meta.get("name")), obj)
    return out


def translate(policy_set: PolicySet, *, cilium_version: str = "1.19", approximate: bool = False,
              inventory=None, host_default_deny: bool = False) -> Translation:
    cm.version_tuple(cilium_version)
    reports: dict[int, PolicyReport] = {}
    for p in policy_set.policies:
        s = p.source
        reports[id(p)] = PolicyReport(s.api_version, s.kind, s.namespace, s.name)
    ranges = ClusterRanges(inventory)      # summarised once for both stages
    prog = compile_policies(policy_set, approximate=approximate,
                            values=_label_values(inventory), emittable=emittable,
                            reports=reports, inventory=inventory, ranges=ranges)
    em = Emitter(policy_set, cilium_version, inventory, ranges)
    objects: list = []
    knps = _knp_index(policy_set)
    for c in prog.compiled:
        rep = c.report
        if c.policy.source.kind == "KubernetesNetworkPolicy":
            raw = knps.get((c.policy.source.namespace, c.policy.source.name))
            if raw is not None and not c.restricted and rep.fidelity == "exact":
                objects.append(raw)       # Cilium enforces it as is
                rep.outputs.append(("NetworkPolicy", raw["metadata"].get("namespace"),
                                    raw["metadata"]["name"]))
                _knp_findings(c, em)
                continue
            if c.restricted:
                rep.add(Finding("knp-replaced", "Calico policies ordered before this "
                                "NetworkPolicy deny part of what it allows: emitted as a "
                                "CiliumNetworkPolicy instead; delete the original",
                                None, "exact"))
            elif raw is not None and c.subject_exact:
                rep.add(Finding("knp-replaced", "Cilium would not enforce this NetworkPolicy "
                                "as Calico does (see the other findings): emitted as a "
                                "CiliumNetworkPolicy instead; delete the original",
                                None, "untranslatable"))
        obj = em.compiled_object(c)
        if obj is None:
            continue
        obj.validate(cilium_version)
        objects.append(obj.to_dict())
        rep.outputs.append((obj.kind, obj.namespace, obj.name))
    prof = em.profile_object(prog)
    if prof is not None:
        prof.validate(cilium_version)
        objects.append(prof.to_dict())
    groups = sorted(em.groups.values(), key=lambda g: g.name)
    for g in groups:
        g.validate(cilium_version)
    objects = [g.to_dict() for g in groups] + objects   # groups before their users
    report = FidelityReport(list(reports.values()))
    for sk in policy_set.skipped:
        kind = sk.source.kind or ""
        if not ("Policy" in kind or "NetworkSet" in kind
                or kind in ("Tier", "HostEndpoint", "Profile")):
            continue     # a Pod or ConfigMap from a cluster export: not worth a report line
        pr = PolicyReport(sk.source.api_version, sk.source.kind, sk.source.namespace,
                          sk.source.name)
        pr.add(Finding("skipped", sk.reason, None, "exact"))
        report.policies.append(pr)
    unselected = _unselected_host_endpoints(policy_set)
    if host_default_deny:
        for hep, pr in unselected:
            obj = _host_default_deny(hep)
            obj.validate(cilium_version)
            objects.append(obj.to_dict())
            pr.outputs.append((obj.kind, None, obj.name))
            pr.findings = [Finding(
                "hostendpoint-default-deny", f"no policy selects it: Calico's default deny for "
                f"node {hep.node} emitted as a host policy (--host-default-deny) that allows "
                "only Felix's default failsafe ports (a FelixConfiguration that changes them "
                "is not read); every other flow of that host is dropped", None, "exact")]
        em.uses_host_firewall = em.uses_host_firewall or bool(unselected)
    report.policies += [pr for _, pr in unselected]
    return Translation(_dedupe(objects), report, _helm_values(prog, policy_set, em))


def _host_default_deny(hep) -> "cm.CiliumClusterwideNetworkPolicy":
    """Calico's default deny for a host endpoint no policy selects, apart from the failsafe
    ports Felix never blocks (inbound to the host, outbound from it). The node is selected by
    name: a HostEndpoint belongs to one node (per-interface matching has no Cilium form)."""
    from ..calico.felix import FAILSAFE_IN, FAILSAFE_OUT

    def ports(pairs):
        return (cm.PortRule(tuple(cm.PortProtocol(str(port), None, proto)
                                  for proto, port in sorted(pairs))),)
    rule = cm.Rule(node_selector=cm.EndpointSelector(
                       (("kubernetes.io/hostname", hep.node),)),
                   ingress=(cm.IngressRule(entities=("all",), to_ports=ports(FAILSAFE_IN)),),
                   egress=(cm.EgressRule(entities=("all",), to_ports=ports(FAILSAFE_OUT)),),
                   description=f"Calico HostEndpoint {hep.name}: default deny, failsafe ports open")
    return cm.CiliumClusterwideNetworkPolicy(f"calico-hep-default-deny-{hep.name}"[:253], (rule,))


def _unselected_host_endpoints(ps: PolicySet) -> list[tuple[object, PolicyReport]]:
    """A HostEndpoint no policy selects is default deny in Calico (failsafe ports apart) and
    nothing in Cilium: say so, per HostEndpoint, rather than report nothing."""
    from ..calico.felix import DEFAULT_ALLOW_PROFILE, policy_selector
    from ..calico.selector import parse
    subjects = [parse(policy_selector(p)) for p in ps.policies if p.is_global]
    out = []
    for h in sorted(ps.host_endpoints, key=lambda h: h.name):
        if not h.node or DEFAULT_ALLOW_PROFILE in h.profiles or any(
                s.evaluate(dict(h.labels)) for s in subjects):
            continue
        pr = PolicyReport(h.source.api_version, h.source.kind, None, h.name)
        where = f"interface {h.interface_name or '*'} of node {h.node}"
        pr.add(Finding("hostendpoint-unselected", f"no policy selects this HostEndpoint, so "
                       f"Calico drops all traffic of {where} apart from its failsafe ports; "
                       "nothing is emitted for it, so under Cilium that host stays open. Give "
                       "it the policy it needs, translate with --host-default-deny for a "
                       "host policy that keeps only the failsafe ports open, or delete the "
                       "HostEndpoint if the default deny is not wanted", None, "untranslatable"))
        out.append((h, pr))
    return out


def _knp_findings(c, em: Emitter) -> None:
    """Findings on a passed-through KNP: ipBlocks over cluster ranges, excluded labels."""
    findings: list = []
    em.policy_specs(c.subject, c.allows, {}, c.directions, findings, "", False)
    for d in ("ingress", "egress"):
        for box, label in c.allows[d]:
            if box.peer.kind == "nets":
                hits, _ = em._cluster_overlap(box.peer.nets)
                if hits:   # the raw ipBlock keeps its Cilium meaning: pods never match it
                    findings.append(Finding(
                        "nets-cover-cluster", f"ipBlock overlaps {hits}: Cilium "
                        "never matches pods or nodes by ipBlock, so they lose this access",
                        label, "approximate"))
    for f in findings:
        if f.code != "nets-cover-cluster" or "ipBlock" in f.message:
            c.report.add(f)


def _dedupe(objects: list) -> list:
    seen, out = set(), []
    for o in objects:
        key = (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
        if key not in seen:
            seen.add(key)
            out.append(o)
    return out


def _helm_values(prog, ps: PolicySet, em: Emitter) -> dict:
    values: dict = {}
    if em.uses_host_firewall:
        values["hostFirewall"] = {"enabled": True}
    if em.uses_nodes:
        # fromNodes/toNodes need enable-node-selector-labels; agent and operator only read it
        # at start, so a pod annotation change rolls both
        restart = {"cni-migrate.io/restart": "node-selector-labels"}
        values["nodeSelectorLabels"] = True
        values["podAnnotations"] = dict(restart)
        values["operator"] = {"podAnnotations": dict(restart)}
    if prog.log_rules:
        values["hubble"] = {"enabled": True, "export": {"static": {
            "enabled": True, "filePath": "/var/run/cilium/hubble/events.log",
            # items are JSON text: the chart joins them into cilium-config's
            # hubble-export-allowlist ({{ allowList | join " " }}); an object item renders
            # as Go's "map[verdict:[DROPPED]]", which the agent cannot parse
            "allowList": ['{"verdict":["DROPPED"]}']}}}
    return values
