"""Flow classes: the L4 side of what verify judges, and the addresses around every CIDR.

Ports: each port and range edge +-1 of every rule on either side, one port no rule mentions,
collapsed to one port per class of ports that every rule range treats alike (both evaluators
only test range membership); named ports get stand-in numbers (synthetic) or their real
numbers (inventory). ICMP: each type a rule names plus one none names, collapsed the same way.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..calico.model import PolicySet
from .model import NamedPort

@dataclass(frozen=True)
class L4:
    protocol: str                  # TCP | UDP | SCTP | ICMP | ICMPv6 | number as text
    port: int | None = None
    icmp_type: int | None = None

    def describe(self) -> str:
        if self.port is not None:
            return f"{self.protocol}/{self.port}"
        if self.icmp_type is not None:
            return f"{self.protocol} type {self.icmp_type}"
        return self.protocol


def _all_cidrs(policy_set: PolicySet, cilium_objects: list[dict]) -> list[str]:
    out: list[str] = []
    for p in policy_set.policies:
        for r in p.ingress + p.egress:
            for ent in (r.source, r.destination):
                out.extend(ent.nets)
                out.extend(ent.not_nets)
    for ns in policy_set.network_sets:
        out.extend(ns.nets)

    for k, v in dict_items(cilium_objects):
        if k in ("fromCIDR", "toCIDR", "except", "externalCIDRs") and isinstance(v, list):
            out.extend(str(c) for c in v)
        elif k == "cidr" and isinstance(v, str):
            out.append(v)
    return out


def dict_items(x):
    """Every (key, value) of every mapping nested anywhere in x (lists and dicts)."""
    stack = [x]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            for k, v in cur.items():
                yield k, v
                if isinstance(v, (dict, list)):
                    stack.append(v)
        elif isinstance(cur, list):
            stack.extend(reversed(cur))


def cidr_probe_addresses(cidrs: list[str]) -> list[str]:
    """An address inside each CIDR (first host, last host) and just outside it."""
    out: set = set()
    for c in dict.fromkeys(cidrs):      # policies repeat a few CIDRs thousands of times
        try:
            n = ipaddress.ip_network(str(c).strip(), strict=False)
        except ValueError:
            continue
        if n.num_addresses == 1:
            out.add(n.network_address)
        else:
            out.add(n.network_address + 1)
            out.add(n.broadcast_address - 1 if n.num_addresses > 2 else n.broadcast_address)
        if n.prefixlen > 0:
            if int(n.network_address) > 0:
                out.add(n.network_address - 1)
            try:
                out.add(n.broadcast_address + 1)
            except ipaddress.AddressValueError:
                pass
    return [str(a) for a in sorted(out, key=lambda a: (a.version, int(a)))]


def _calico_ports(policy_set: PolicySet):
    for p in policy_set.policies:
        for r in p.ingress + p.egress:
            proto = r.protocol
            for pr in r.destination.ports + r.destination.not_ports:
                yield proto, pr.first, pr.last, pr.name
            if r.icmp is not None and r.icmp.type is not None:
                yield proto or "ICMP", None, r.icmp.type, None
            if r.not_icmp is not None and r.not_icmp.type is not None:
                yield proto or "ICMP", None, r.not_icmp.type, None
            if proto is not None and not r.destination.ports:
                yield proto, None, None, None
            if r.not_protocol is not None:
                yield r.not_protocol, None, None, None


def _cilium_ports(objects: list[dict]):
    def rules(o):
        kind = o.get("kind")
        if kind == "NetworkPolicy":
            spec = o.get("spec") or {}
            for sec in ("ingress", "egress"):
                for r in spec.get(sec) or []:
                    for p in (r or {}).get("ports") or []:
                        yield p.get("protocol") or "TCP", p.get("port"), p.get("endPort")
            return
        for s in [o.get("spec")] + list(o.get("specs") or []):
            if not isinstance(s, dict):
                continue
            for sec in ("ingress", "ingressDeny", "egress", "egressDeny"):
                for r in s.get(sec) or []:
                    for tp in (r or {}).get("toPorts") or []:
                        for p in tp.get("ports") or []:
                            yield p.get("protocol") or "ANY", p.get("port"), p.get("endPort")
                    for gi, ic in enumerate((r or {}).get("icmps") or []):
                        for f in ic.get("fields") or []:
                            yield ("ICMPv6" if f.get("family") == "IPv6" else "ICMP"), None, \
                                ("icmp", f.get("type"), (id(r), gi))
    for o in objects:
        for proto, port, end in rules(o):
            proto = str(proto).upper()
            if isinstance(end, tuple):
                t = end[1]
                if isinstance(t, str) and not t.isdigit():
                    from ..cilium.evaluator import ICMP4_NAMES, ICMP6_NAMES
                    t = (ICMP6_NAMES if proto == "ICMPV6" else ICMP4_NAMES).get(t)
                if t is not None:
                    yield ("ICMPv6" if proto == "ICMPV6" else "ICMP"), None, int(t), \
                        ("icmp-group",) + end[2]
                continue
            if port is None or str(port) in ("", "0"):
                continue
            if str(port).isdigit():
                first = int(port)
                last = int(end) if end and int(end) >= first else first
                yield proto, first, last, None
            else:
                yield proto, 0, 0, str(port)


def _norm_proto(p) -> str:
    if p is None:
        return "ANY"
    s = str(p)
    u = s.upper()
    if u in ("TCP", "UDP", "SCTP", "ICMP", "ANY", "UDPLITE"):
        return u
    if u == "ICMPV6":
        return "ICMPv6"
    return s


# Felix never lets host endpoint policy block these (failsafe ports): judged separately
FAILSAFE_PORTS = (22, 53, 67, 68, 179, 2379, 2380, 5473, 6443, 6666, 6667)


def _collapse(ports: set[int], ranges: set[tuple[int, int]], keep: set[int],
              preferred: set[int]) -> list[int]:
    """One port per class of ports that every rule range treats alike (both evaluators only
    test membership in these ranges), preferring ports a rule names."""
    by_sig: dict[tuple, list[int]] = {}
    for p in sorted(ports):
        if p in keep:
            continue
        sig = tuple(i for i, (a, b) in enumerate(sorted(ranges)) if a <= p <= b)
        by_sig.setdefault(sig, []).append(p)
    out = set(keep & ports)
    for members in by_sig.values():
        named = [p for p in members if p in preferred]
        out.add(named[0] if named else members[0])
    return sorted(out)


def flow_classes(policy_set: PolicySet, cilium_objects: list[dict], *,
                 extra_ports: tuple[int, ...] = ()) -> tuple[list[L4], list[NamedPort]]:
    """L4 classes: each port and range edge +-1 of every rule, one port no rule mentions,
    TCP and UDP always (SCTP if named), each ICMP type named plus one not named. Ports that
    every rule treats alike are collapsed into one class.

    extra_ports: real numbers of named ports (inventory), always kept."""
    ports: set[int] = set()
    ranges: set[tuple[int, int]] = set()
    preferred: set[int] = set()
    protos = {"TCP", "UDP"}
    icmp: dict[str, set] = {"ICMP": set(), "ICMPv6": set()}
    icmp_sets: dict[tuple, set] = {}
    named: dict[tuple[str, str], None] = {}
    for proto, first, last, name in list(_calico_ports(policy_set)) + list(_cilium_ports(cilium_objects)):
        proto = _norm_proto(proto)
        if proto in ("ICMP", "ICMPv6"):
            if last is not None:
                icmp[proto].add(int(last))
                # the set of types one rule matches (a Calico rule: one type)
                gkey = name if isinstance(name, tuple) else ("one", int(last))
                icmp_sets.setdefault((proto, gkey), set()).add(int(last))
            continue
        if proto not in ("ANY",):
            protos.add(proto)
        if name and not isinstance(name, tuple):
            named[(name, "TCP" if proto in ("ANY",) else proto)] = None
            continue
        if first is None:
            continue
        ranges.add((first, last))
        preferred.update((first, last))
        for p in (first - 1, first, last, last + 1):
            if 1 <= p <= 65535:
                ports.add(p)
    named_ports = []
    for i, (name, proto) in enumerate(sorted(named)):
        port = 20000 + i
        named_ports.append(NamedPort(name=name, port=port, protocol=proto if proto in
                                     ("TCP", "UDP", "SCTP") else "TCP"))
        ports.add(port)
    unused = next(p for p in range(65000, 1, -1) if p not in ports)
    ports.add(unused)
    if not ports - {unused}:
        ports.add(80)
    keep = {np.port for np in named_ports} | set(extra_ports)
    if policy_set.host_endpoints:
        keep |= set(FAILSAFE_PORTS)
    ports |= keep
    ports_list = _collapse(ports, ranges, keep, preferred)
    out: list[L4] = []
    for proto in sorted(protos):
        if proto in ("TCP", "UDP", "SCTP", "UDPLITE"):
            out.extend(L4(proto, p) for p in ports_list)
        else:
            out.append(L4(proto))       # numeric protocols: one class each
    for proto in ("ICMP", "ICMPv6"):
        types = icmp[proto]
        if proto == "ICMPv6" and not types:
            continue
        other = next((t for t in (8, 0, 3, 11, 13, 128, 129, 1, 2, *range(256))
                      if t not in types), None)
        sets = [v for (p, _g), v in sorted(icmp_sets.items(), key=repr) if p == proto]
        by_sig: dict[tuple, int] = {}
        for t in sorted(types | ({other} if other is not None else set())):
            # types every rule treats alike are one class (prefer echo request)
            sig = tuple(i for i, st in enumerate(sets) if t in st)
            if sig not in by_sig or t == 8:
                by_sig[sig] = t
        out.extend(L4(proto, None, t) for t in sorted(by_sig.values()))
    return out, named_ports
