"""Compiled regions -> Cilium objects (CNP, CCNP, CiliumCIDRGroup) and passed-through KNPs.

One CNP per namespaced Calico policy, one CCNP per global one; each has one spec per distinct
subject selector. Every subject of a policy gets its directions (`ingress: [{}]` when nothing is
allowed) so Cilium's default deny plays Calico's end-of-tier drop. Network sets referenced by
selector become CiliumCIDRGroups (cidrGroupRef). Names are deterministic and DNS-safe; every
object carries annotations naming its source.
"""
from __future__ import annotations

import hashlib
import ipaddress
import re

from ..cilium import model as cm
from ..calico.model import PolicySet
from .compile import Compiled, Program
from .ranges import ClusterRanges, net
from .region import Box, L4, Peer
from .report import Finding
from .selectors import excluded_label as _excluded
from .selectors import (KIND, NS_KEY, NSL_PREFIX, ORCH, ABSENT, Constraint, NotExpressible,
                        conj_and, conj_key, label_selectors, matches)

ANN = "cni-migrate.io/"
PROFILE_NAME = "calico-profile-allow"
# Cilium's reserved identities other than world (an address range) and unmanaged (pods of the
# old CNI, which Calico sees as pods): what "not an endpoint, not an outside address" means
RESERVED_ENTITIES = ("health", "host", "ingress", "init", "kube-apiserver", "remote-node")


def dns_name(*parts: str, limit: int = 253) -> str:
    raw = "-".join(p for p in parts if p)
    s = re.sub(r"[^a-z0-9.-]+", "-", raw.lower())
    s = re.sub(r"-{2,}", "-", s).strip("-.") or "policy"
    if s != raw.lower() or len(s) > limit:   # keep distinct sources distinct after cleaning
        digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
        s = f"{s[:limit - 9].rstrip('-.')}-{digest}"
    return s


def _source_annotations(ref) -> dict:
    ann = {ANN + "source-kind": ref.kind, ANN + "source-name": ref.name}
    if ref.namespace:
        ann[ANN + "source-namespace"] = ref.namespace
    return ann


def excluded_label(key: str) -> bool:
    """Keys Cilium keeps out of identities; namespace and service-account keys are kept."""
    if key.startswith(NSL_PREFIX) or key == NS_KEY or key.startswith("k8s:io.cilium.k8s"):
        return False
    return _excluded(key)


def emittable(box: Box) -> NotExpressible | None:
    x = box.l4
    if x.proto is None:
        return None
    if x.proto in ("TCP", "UDP", "SCTP"):
        return None
    if x.proto in ("ICMP", "ICMPv6"):
        return None
    return NotExpressible("protocol", f"protocol {x.proto} has no Cilium form")


def _kinds(conj) -> set:
    k = dict(conj).get(KIND)
    return {v for v in ("pod", "hep", "netset") if k is None or k.matches(v)}


def _strip(conj) -> tuple:
    return tuple((k, c) for k, c in conj if not k.startswith("@"))


def _pod_part(conj):
    """The pod part of a selector conj, with pseudo keys resolved; None if it has none."""
    if "pod" not in _kinds(conj):
        return None
    orch = dict(conj).get(ORCH)
    if orch is not None and not orch.matches("k8s"):
        return None
    return _strip(conj)


def _selectors(conj, findings: list, where: str, *, peer: bool) -> list[cm.EndpointSelector]:
    out = []
    if peer:
        # a peer is a pod: it has a namespace. Saying so keeps NotIn/DoesNotExist terms from
        # matching reserved identities (world, host), and in a CNP makes "any namespace"
        # explicit (a selector without a namespace key would mean the policy's own)
        conj = conj_and(conj, ((NS_KEY, Constraint(False, frozenset({ABSENT}))),))
        if conj is None:
            return []
    for labels, exprs in label_selectors(conj):
        reqs = [cm.Requirement(k, op, vals) for k, op, vals in exprs]
        keys = [k for k, _ in labels] + [r.key for r in reqs]
        bad = [k for k in keys if excluded_label(k)]
        if bad:
            findings.append(Finding("excluded-label", f"{where} selects on {', '.join(bad)}, "
                                    "which Cilium keeps out of identities", None,
                                    "untranslatable"))
        out.append(cm.EndpointSelector(tuple(labels), tuple(reqs)))
    return out


class _NetSets:
    """Network sets in output order with their normalised ranges, and which sets hold each
    range (a policy peer is matched against them for every rule)."""

    def __init__(self, network_sets):
        self.ordered = []
        self.by_cidr: dict[str, list[int]] = {}
        for ns in sorted(network_sets, key=lambda n: (n.namespace or "", n.name)):
            mine = {str(net(c)) for c in ns.nets}
            if not mine:
                continue
            for c in mine:
                self.by_cidr.setdefault(c, []).append(len(self.ordered))
            self.ordered.append((ns, mine))


class Emitter:
    def __init__(self, ps: PolicySet, version: str, inventory=None, ranges=None):
        self.ps = ps
        self.version = version
        self.inventory = inventory
        self.groups: dict[str, cm.CiliumCIDRGroup] = {}
        self.uses_nodes = False
        self.uses_host_firewall = False
        self.names: set = {(None, PROFILE_NAME)}
        self.ranges = ranges if ranges is not None else ClusterRanges(inventory)
        self._sets: _NetSets | None = None

    def _unique(self, p, name: str) -> str:
        """Distinct sources never share an output name (one would silently replace the
        other): a clash gets a suffix hashed from the source."""
        key = (p.namespace, name)
        if key in self.names:
            digest = hashlib.sha256(p.source.describe().encode()).hexdigest()[:8]
            name = f"{name[:244]}-{digest}"
            key = (p.namespace, name)
        self.names.add(key)
        return name

    # --------------------------------------------------------------------------- peers
    def _cidr_rules(self, nets) -> tuple:
        """CIDR peers; a network set whose every range is present (without excepts) is
        referenced as its CiliumCIDRGroup, so later edits to the group apply."""
        plain = {str(net(c)) for c, ex in nets if not ex}
        used: set = set()
        refs = []
        sets = self._netsets()
        # only a set holding one of these ranges can be wholly inside them
        for i in sorted({i for c in plain for i in sets.by_cidr.get(c, ())}):
            ns, mine = sets.ordered[i]
            if not mine <= plain:
                continue
            name = dns_name("calico-netset", ns.namespace or "", ns.name)
            if name not in self.groups:
                self.groups[name] = cm.CiliumCIDRGroup(
                    name, tuple(sorted(ns.nets)), self.version,
                    annotations=_source_annotations(ns.source))
            refs.append(cm.CIDRRule(cidr_group_ref=name))
            used |= mine
        rest = [cm.CIDRRule(c, tuple(ex)) for c, ex in nets if ex or str(net(c)) not in used]
        return tuple(refs + rest)

    def _netsets(self) -> "_NetSets":
        if self._sets is None:
            self._sets = _NetSets(self.ps.network_sets)
        return self._sets

    def _cluster_overlap(self, nets) -> tuple[str, bool]:
        """The cluster ranges the nets overlap (text, '' if none), and whether the nets
        cover every cluster address."""
        hits = self.ranges.overlapping(nets)
        covered = bool(hits) and self.ranges.known and self.ranges.covered_by(nets)
        return self.ranges.describe(hits), covered

    def _cluster_cover(self, nets, what: str, findings: list, label: str,
                       deny: bool) -> list[dict]:
        """Calico matches pods and nodes by address; Cilium CIDR rules never do. Extra peer
        items (and findings) for address ranges that reach into the cluster."""
        hits, covered = self._cluster_overlap(nets)
        if covered:
            # every pod and node address is inside: Calico matches them all, which Cilium
            # says with the cluster entity
            return [{"entities": ("cluster",)}]
        if hits and deny:
            findings.append(Finding(
                "nets-cover-cluster", f"{what} overlap {hits}: Cilium CIDR rules "
                "never match pods or nodes, so the deny also covers the cluster entity "
                "(may deny more than Calico)", label, "untranslatable"))
            return [{"entities": ("cluster",)}]   # never widen
        if hits:
            findings.append(Finding(
                "nets-cover-cluster", f"{what} overlap {hits}: Cilium CIDR rules "
                "never match pods or nodes, so pods/nodes in range are not allowed", label,
                "approximate"))
        return []

    def peer_items(self, peer: Peer, cls, findings: list, label: str, deny: bool) -> list[dict]:
        """Peer fields (kwargs of an IngressRule/EgressRule...) for one peer; [] = nothing."""
        if peer.kind == "any":
            return [{"entities": ("all",)}]
        if peer.kind == "reserved":
            return [{"entities": RESERVED_ENTITIES}]
        if peer.kind == "nets":
            if not peer.nets:
                return []     # an empty address set: never "no peer" (that means any peer)
            out = [{"cidr_set": self._cidr_rules(peer.nets)}]
            if not peer.user:   # "every outside address": pods are matched by selectors
                return out
            return out + self._cluster_cover(peer.nets, "nets", findings, label, deny)
        out = []
        if peer.user and peer.conj and "hep" in _kinds(peer.conj) \
                and not self.ps.host_endpoints and matches(peer.conj, {KIND: "hep"}):
            findings.append(Finding(
                "hosts-assumed-not-endpoints", "this selector would match unlabelled host "
                "endpoints too; none are declared, so hosts are not matched", label,
                "approximate"))
        pod = _pod_part(peer.conj)
        eps = _selectors(pod, findings, label, peer=True) if pod is not None else []
        if eps:
            out.append({"endpoints": tuple(eps)})
        if "hep" in _kinds(peer.conj) and any(
                matches(peer.conj, {**h.labels, KIND: "hep"}) for h in self.ps.host_endpoints):
            # hosts have no namespace: terms on namespace keys (they matched by absence) go
            host = tuple((k, c) for k, c in peer.conj if k != KIND and k != ORCH
                         and k != NS_KEY and not k.startswith(NSL_PREFIX))
            out.append({"nodes": tuple(_selectors(host, findings, label, peer=False))})
            self.uses_nodes = True
            findings.append(Finding("host-endpoint-peer", "host endpoints as peers become "
                                    "fromNodes/toNodes, assuming HostEndpoint labels are the "
                                    "Node's labels", label, "approximate"))
        return out

    def _reserved_items(self, box: Box, label: str, boxes_labels, findings: list,
                        deny: bool) -> list[dict]:
        """The reserved peer means hosts *without* a HostEndpoint (and Cilium's other reserved
        identities), but Cilium's host/remote-node entities are every node. Exact when every
        declared HostEndpoint is a peer of the same rule anyway; otherwise a deny covers those
        hosts too (never widens) and an allow leaves all hosts out (never widens)."""
        heps = self.ps.host_endpoints
        peers = [b.peer for b, lbl in boxes_labels if lbl == label and b.subject == box.subject
                 and b.l4 == box.l4 and b.peer.kind in ("sel", "any")]
        missed = sorted(h.name for h in heps if not any(
            q.kind == "any" or matches(q.conj, {**h.labels, KIND: "hep"}) for q in peers))
        if not missed:
            return [{"entities": RESERVED_ENTITIES}]
        if deny:
            findings.append(Finding(
                "reserved-hosts", "the deny reaches hosts without a HostEndpoint; Cilium's "
                "host/remote-node entities are every node, so it also denies the hosts of "
                f"{', '.join(missed)} (may deny more than Calico)", label, "untranslatable"))
            return [{"entities": RESERVED_ENTITIES}]
        findings.append(Finding(
            "reserved-hosts", "the allow reaches hosts without a HostEndpoint but not those of "
            f"{', '.join(missed)}; Cilium's host/remote-node entities cannot tell them apart, "
            "so hosts are not allowed", label, "approximate"))
        rest = tuple(e for e in RESERVED_ENTITIES if e not in ("host", "remote-node"))
        return [{"entities": rest}]

    # --------------------------------------------------------------------------- L4
    @staticmethod
    def l4_items(x: L4) -> list[dict]:
        if x.proto is None:
            return [{}]
        if x.proto in ("ICMP", "ICMPv6"):
            fam = "IPv4" if x.proto == "ICMP" else "IPv6"
            if x.icmp_type is not None:
                return [{"icmps": (cm.ICMPRule((cm.ICMPField(x.icmp_type, fam),)),)}]
            # all ICMP: Cilium matches ICMP by type only, so list every type (0-255), at
            # most 40 fields per rule item
            types = list(range(256))
            return [{"icmps": (cm.ICMPRule(tuple(cm.ICMPField(t, fam)
                                                 for t in types[i:i + cm.MAX_ICMP_FIELDS])),)}
                    for i in range(0, 256, cm.MAX_ICMP_FIELDS)]
        if x.named is not None:
            ports = [cm.PortProtocol(n, None, x.proto) for n in x.named]
        elif x.ports is None:
            ports = [cm.PortProtocol("0", None, x.proto)]
        else:
            ports = [cm.PortProtocol(str(lo), hi if hi > lo else None, x.proto)
                     for lo, hi in x.ports]
        http = tuple(cm.HTTPRule(m, p) for m, p in x.http)
        chunks = [ports[i:i + cm.MAX_PORTS] for i in range(0, len(ports), cm.MAX_PORTS)]
        return [{"to_ports": (cm.PortRule(tuple(ch), http),)} for ch in chunks]

    def items(self, boxes_labels, cls, findings: list, deny: bool) -> dict:
        """{subject conj: [rule items]} for a list of (Box, rule label)."""
        out: dict = {}
        for box, label in boxes_labels:
            if box.peer.kind == "reserved":
                peers = self._reserved_items(box, label, boxes_labels, findings, deny)
            else:
                peers = self.peer_items(box.peer, cls, findings, label, deny)
            for peer in peers:
                for l4 in self.l4_items(box.l4):
                    item = cls(**peer, **l4)
                    lst = out.setdefault(box.subject, [])
                    if item not in lst:
                        lst.append(item)
        return out

    # --------------------------------------------------------------------------- policies
    def policy_specs(self, subjects: list, allows: dict, denies: dict, directions, findings,
                     description: str, clusterwide: bool = True,
                     untracked: bool = False) -> list[cm.Rule]:
        parts: dict = {}   # subject conj -> {field: [items]}
        for d, cls, dcls in (("ingress", cm.IngressRule, cm.IngressDenyRule),
                             ("egress", cm.EgressRule, cm.EgressDenyRule)):
            for subj, its in self.items(allows.get(d, []), cls, findings, False).items():
                parts.setdefault(subj, {}).setdefault(d, []).extend(its)
            for subj, its in self.items(denies.get(d, []), dcls, findings, True).items():
                parts.setdefault(subj, {}).setdefault(d + "_deny", []).extend(its)
        for subj in subjects if not untracked else ():   # default deny in its directions
            for d in directions:
                p = parts.setdefault(subj, {})
                if not p.get(d) and not p.get(d + "_deny"):
                    p[d] = [(cm.IngressRule if d == "ingress" else cm.EgressRule)()]
        specs = []
        for subj in sorted(parts, key=conj_key):
            f = parts[subj]
            pod = _pod_part(subj)
            heps = [h for h in self.ps.host_endpoints
                    if "hep" in _kinds(subj) and matches(subj, {**h.labels, KIND: "hep"})]
            if heps:
                self.uses_host_firewall = True
                findings.append(Finding(
                    "host-endpoint", "applies to host endpoints "
                    f"({', '.join(sorted(h.name for h in heps))}): emitted as a host policy "
                    "(nodeSelector) assuming the HostEndpoint labels are the Node's labels; "
                    "per-interface matching and Calico's failsafe ports have no Cilium form "
                    "(keep SSH/API access allowed explicitly)", None, "approximate"))
                host = tuple((k, c) for k, c in subj if k != KIND and k != ORCH
                             and k != NS_KEY and not k.startswith(NSL_PREFIX))
                # only nodes carrying a matching HostEndpoint's labels: nodes without a
                # HostEndpoint are not policed by Calico
                conjs = {conj_and(host, tuple((k, Constraint(True, frozenset({v})))
                                              for k, v in sorted(h.labels.items())))
                         for h in heps}
                for ns_sel in (x for c in sorted(conjs - {None}, key=conj_key)
                               for x in _selectors(c, findings, "host selector", peer=False)):
                    specs.append(cm.Rule(node_selector=ns_sel,
                                         ingress=tuple(f.get("ingress", ())),
                                         ingress_deny=tuple(f.get("ingress_deny", ())),
                                         egress=tuple(f.get("egress", ())),
                                         egress_deny=tuple(f.get("egress_deny", ())),
                                         description=description))
            if pod is None:
                continue
            # clusterwide subjects say "a pod" explicitly so they never select the host
            for es in _selectors(pod, findings, "policy selector", peer=clusterwide):
                specs.append(cm.Rule(endpoint_selector=es,
                                     ingress=tuple(f.get("ingress", ())),
                                     ingress_deny=tuple(f.get("ingress_deny", ())),
                                     egress=tuple(f.get("egress", ())),
                                     egress_deny=tuple(f.get("egress_deny", ())),
                                     description=description))
        return specs

    def compiled_object(self, c: Compiled):
        if not c.subject_exact:
            return None          # refused (see compile: subject-refused)
        p = c.policy
        findings: list = []
        specs = self.policy_specs(c.subject, {d: c.allows[d] for d in c.allows},
                                  {d: c.denies[d] for d in c.denies}, c.directions, findings,
                                  f"from {p.source.describe()}", p.namespace is None,
                                  p.do_not_track or p.pre_dnat)
        for f in findings:
            c.report.add(f)
        if not specs:
            return None
        rules = sorted({lbl for d in c.allows for _, lbl in c.allows[d] + c.denies[d]})
        ann = {**_source_annotations(p.source), ANN + "source-tier": p.tier}
        if rules:
            ann[ANN + "source-rules"] = ",".join(rules)
        kind_tag = {"NetworkPolicy": "np", "GlobalNetworkPolicy": "gnp",
                    "KubernetesNetworkPolicy": "knp"}.get(p.source.kind, p.source.kind.lower())
        tier = "" if p.tier == "default" else p.tier
        short = p.name[len(tier) + 1:] if tier and p.name.startswith(tier + ".") else p.name
        if p.source.kind == "KubernetesNetworkPolicy":
            short = p.source.name
        name = self._unique(p, dns_name("calico", kind_tag, tier, short))
        if p.namespace:
            return cm.CiliumNetworkPolicy(name, tuple(specs), p.namespace, annotations=ann)
        return cm.CiliumClusterwideNetworkPolicy(name, tuple(specs), annotations=ann)

    def profile_object(self, prog: Program):
        findings: list = []
        allows = {d: [(b, "profile") for b in prog.profile_allows[d]] for d in prog.profile_allows}
        specs = self.policy_specs([], allows, {}, (), findings,
                                  "Calico profiles allow what every tier passed")
        if not specs:
            return None
        return cm.CiliumClusterwideNetworkPolicy(
            PROFILE_NAME, tuple(specs),
            annotations={ANN + "source-kind": "Profile",
                         ANN + "source-name": "kns.* (namespace profiles: allow)"})
