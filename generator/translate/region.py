"""Sets of flows for one direction of one endpoint class, as unions of boxes.

A Box is subject x peer x L4 (protocol, destination ports, ICMP type). The compiler subtracts
boxes from boxes to turn Calico's first-match rule lists into Cilium's order-free allow/deny
rules; every operation is exact or raises NotExpressible (never silently widens).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .selectors import KIND, NS_KEY, Conj, Constraint, NotExpressible, conj_and, conj_not

PORT_MAX = 65535
L4_PROTOS = ("TCP", "UDP", "SCTP")
MAX_BOXES = 256


@dataclass(frozen=True)
class Peer:
    """kind "any"; "sel" (endpoints matching conj); "nets" (IP ranges: cidrs minus excepts);
    "reserved" (hosts and Cilium's other reserved identities: neither an endpoint Calico
    selects nor an outside address). any = sel(all) + nets(everything) + reserved, disjoint
    as long as nets do not cover pod/node ranges (checked and reported when emitting)."""
    kind: str = "any"
    conj: Conj = ()
    nets: tuple = ()          # ((cidr, (except, ...)), ...) normalised strings
    user: bool = True         # nets written by the user (False: "every outside address")


ANY_PEER = Peer()
ALL_NETS = Peer("nets", nets=(("0.0.0.0/0", ()), ("::/0", ())), user=False)
# network sets are resolved to nets by the compiler, so selector peers are pods and hosts
FULL = {"sel": Peer("sel", conj=((KIND, Constraint(True, frozenset({"pod", "hep"}))),),
                    user=False),
        "nets": ALL_NETS, "reserved": Peer("reserved", user=False)}


@dataclass(frozen=True)
class L4:
    proto: str | None = None                  # None = any protocol
    ports: tuple | None = None                # ((lo, hi), ...) sorted, disjoint; None = all
    named: tuple | None = None                # named destination ports (instead of numbers)
    icmp_type: int | None = None
    http: tuple = ()                          # ((method or None, path regex or None), ...):
                                              # only set on approximate allows, never cut


ANY_L4 = L4()


@dataclass(frozen=True)
class Box:
    subject: Conj
    peer: Peer = ANY_PEER
    l4: L4 = ANY_L4


# ------------------------------------------------------------------------------ subject / conj

def _conj_minus(a: Conj, b: Conj) -> list:
    out = []
    for n in conj_not(b):
        c = conj_and(a, n)
        if c is not None:
            out.append(c)
    return out


# ------------------------------------------------------------------------------ peers

def _net(s: str):
    return ipaddress.ip_network(s, strict=False)


def make_nets(nets, not_nets=()) -> Peer:
    """Peer for Calico nets/notNets: every net minus the notNets inside it."""
    out = []
    excl = [_net(x) for x in not_nets]
    for n in sorted({_net(x) for x in nets}, key=lambda n: (n.version, n)):
        if any(n.version == e.version and n.subnet_of(e) for e in excl):
            continue
        ex = sorted({str(e) for e in excl if e.version == n.version and e.subnet_of(n)})
        out.append((str(n), tuple(ex)))
    return Peer("nets", nets=tuple(out))


def _nets_inter(a: Peer, b: Peer) -> Peer | None:
    out = []
    for ca, ea in a.nets:
        for cb, eb in b.nets:
            na, nb = _net(ca), _net(cb)
            if na.version != nb.version or not (na.subnet_of(nb) or nb.subnet_of(na)):
                continue
            inner = na if na.subnet_of(nb) else nb
            ex = {_net(e) for e in ea + eb if _net(e).subnet_of(inner) or inner.subnet_of(_net(e))}
            if any(inner.subnet_of(e) for e in ex):
                continue
            out.append((str(inner), tuple(sorted(str(e) for e in ex))))
    return Peer("nets", nets=tuple(out), user=a.user or b.user) if out else None


def _nets_minus(a: Peer, b: Peer) -> list[Peer]:
    """a - b for nets; exact when b has no excepts (else the difference re-adds holes)."""
    if any(eb for _, eb in b.nets):
        raise NotExpressible("cidr-difference", "difference of CIDR sets with excepts")
    out = []
    for ca, ea in a.nets:
        na = _net(ca)
        if any(na.version == _net(cb).version and na.subnet_of(_net(cb)) for cb, _ in b.nets):
            continue
        ex = {_net(e) for e in ea}
        for cb, _ in b.nets:
            nb = _net(cb)
            if nb.version == na.version and nb.subnet_of(na):
                ex.add(nb)
        # drop excepts nested in other excepts
        ex = {e for e in ex if not any(e != f and e.subnet_of(f) for f in ex)}
        out.append((ca, tuple(sorted(str(e) for e in ex))))
    return [Peer("nets", nets=tuple(out), user=a.user)] if out else []


def peer_inter(a: Peer, b: Peer) -> Peer | None:
    if a.kind == "any":
        return b
    if b.kind == "any":
        return a
    if a.kind != b.kind:
        # selector peers are endpoints, nets are addresses outside the cluster: disjoint as
        # long as nets do not cover pod/node ranges (checked and reported separately)
        return None
    if a.kind == "sel":
        c = conj_and(a.conj, b.conj)
        return None if c is None else Peer("sel", conj=c, user=a.user or b.user)
    if a.kind == "reserved":
        return a
    return _nets_inter(a, b)


def peer_minus(a: Peer, b: Peer) -> list[Peer]:
    if b.kind == "any":
        return []
    if peer_inter(a, b) is None:
        return [a]
    if a.kind == "any":
        # split "any" into its three disjoint parts and subtract from the matching one
        return [FULL[k] for k in ("sel", "nets", "reserved") if k != b.kind] + \
            peer_minus(FULL[b.kind], b)
    if a.kind == "sel":
        return [Peer("sel", conj=c, user=a.user) for c in _conj_minus(a.conj, b.conj)]
    if a.kind == "reserved":
        return []
    return _nets_minus(a, b)


# ------------------------------------------------------------------------------ L4

def _iv_inter(a, b):
    out = []
    for lo, hi in a:
        for lo2, hi2 in b:
            x, y = max(lo, lo2), min(hi, hi2)
            if x <= y:
                out.append((x, y))
    return tuple(sorted(out))


def _iv_minus(a, b):
    out = list(a)
    for lo2, hi2 in b:
        nxt = []
        for lo, hi in out:
            if hi < lo2 or lo > hi2:
                nxt.append((lo, hi))
                continue
            if lo < lo2:
                nxt.append((lo, lo2 - 1))
            if hi > hi2:
                nxt.append((hi2 + 1, hi))
        out = nxt
    return tuple(sorted(out))


ALL_PORTS = ((1, PORT_MAX),)   # port 0 carries no traffic; Cilium port "0" means "any"


def l4_inter(a: L4, b: L4) -> L4 | None:
    if a.proto and b.proto and a.proto != b.proto:
        return None
    proto = a.proto or b.proto
    if a.icmp_type is not None and b.icmp_type is not None and a.icmp_type != b.icmp_type:
        return None
    icmp = a.icmp_type if a.icmp_type is not None else b.icmp_type
    if a.named is not None and b.named is not None:
        named = tuple(sorted(set(a.named) & set(b.named)))
        return L4(proto, None, named, icmp) if named else None
    if a.named is not None or b.named is not None:
        named_side, num_side = (a, b) if a.named is not None else (b, a)
        if num_side.ports is None:
            return L4(proto, None, named_side.named, icmp)
        raise NotExpressible("named-port-overlap",
                             "named and numeric ports: overlap unknown without pod specs")
    if a.ports is None:
        ports = b.ports
    elif b.ports is None:
        ports = a.ports
    else:
        ports = _iv_inter(a.ports, b.ports)
        if not ports:
            return None
    return L4(proto, ports, None, icmp)


def l4_minus(a: L4, b: L4) -> list[L4]:
    if l4_inter(a, b) is None:
        return [a]
    if b == ANY_L4:
        return []
    if a.proto is None:
        raise NotExpressible("protocol-complement",
                             "'any protocol except some' has no exact Cilium form")
    # same protocol from here on
    if b.icmp_type is not None:
        if a.icmp_type is None:
            raise NotExpressible("icmp-complement", "'ICMP except a type' has no Cilium form")
        return []
    if b.named is not None:
        if a.named is None:
            raise NotExpressible("named-port-overlap", "numeric ports minus named ports")
        rest = tuple(sorted(set(a.named) - set(b.named)))
        return [L4(a.proto, None, rest, a.icmp_type)] if rest else []
    if b.ports is None:
        return []
    if a.named is not None:
        raise NotExpressible("named-port-overlap", "named ports minus numeric ports")
    rest = _iv_minus(a.ports if a.ports is not None else ALL_PORTS, b.ports)
    return [L4(a.proto, rest, None, None)] if rest else []


# ------------------------------------------------------------------------------ boxes

def box_inter(a: Box, b: Box) -> Box | None:
    s = conj_and(a.subject, b.subject)
    if s is None:
        return None
    p = peer_inter(a.peer, b.peer)
    if p is None:
        return None
    x = l4_inter(a.l4, b.l4)
    return None if x is None else Box(s, p, x)


def box_minus(a: Box, b: Box) -> list[Box]:
    s = conj_and(a.subject, b.subject)
    if s is None:
        return [a]
    p = peer_inter(a.peer, b.peer)
    if p is None:
        return [a]
    x = l4_inter(a.l4, b.l4)
    if x is None:
        return [a]
    out = [Box(c, a.peer, a.l4) for c in _conj_minus(a.subject, b.subject)]
    out += [Box(s, q, a.l4) for q in peer_minus(a.peer, b.peer)]
    out += [Box(s, p, y) for y in l4_minus(a.l4, b.l4)]
    return out


def region_minus(region: list[Box], sub: list[Box]) -> list[Box]:
    out = list(region)
    for b in sub:
        nxt = []
        for a in out:
            nxt.extend(box_minus(a, b))
        out = nxt
        if len(out) > MAX_BOXES:
            raise NotExpressible("too-complex", f"more than {MAX_BOXES} rule regions")
    return out


def region_inter(a: list[Box], b: list[Box]) -> list[Box]:
    out = []
    for x in a:
        for y in b:
            z = box_inter(x, y)
            if z is not None:
                out.append(z)
    return out


# ------------------------------------------------------------------------------ index

def ns_bucket(subject: Conj):
    """The namespaces a subject is pinned to (a positive constraint; ABSENT counts as a value:
    non-namespaced endpoints), or None: any namespace. Two subjects pinned to disjoint
    buckets cannot intersect."""
    for k, c in subject:
        if k == NS_KEY:
            return c.vals if c.positive else None
    return None


class NsIndex:
    """Keys filed under the namespaces they are pinned to (None: any namespace)."""

    def __init__(self):
        self.by_ns: dict = {}
        self.unpinned: list = []

    def add(self, key, namespaces) -> None:
        if namespaces is None:
            self.unpinned.append(key)
        else:
            for v in namespaces:
                self.by_ns.setdefault(v, []).append(key)

    def namespaces(self):
        """Every namespace a key is filed under; None if some key is unpinned."""
        return None if self.unpinned else set(self.by_ns)

    def meeting(self, region) -> set | None:
        """The keys that may meet some box of region; None: all of them."""
        found = set(self.unpinned)
        for x in region:
            ns = ns_bucket(x.subject)
            if ns is None:
                return None
            for v in ns:
                found.update(self.by_ns.get(v, ()))
        return found


class BoxSet:
    """Boxes in first-insertion order, without repeats, indexed by the namespaces their
    subjects are pinned to. A cluster has thousands of namespaced policies: a rule's region
    only meets the boxes of its own namespaces (and the unpinned ones), so `candidates` keeps
    region_minus/region_inter from scanning every box ever emitted. Dropping a box that
    meets no box of the region changes neither result (every piece of a region box lies
    inside it), nor the MAX_BOXES check (the skipped steps leave the region as it was)."""

    def __init__(self, boxes=()):
        self.order: dict[Box, int] = {}
        self.index = NsIndex()
        self.extend(boxes)

    def extend(self, boxes) -> None:
        for b in boxes:
            if b not in self.order:
                self.order[b] = len(self.order)
                self.index.add(b, ns_bucket(b.subject))

    def __iter__(self):
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)

    def __bool__(self) -> bool:
        return bool(self.order)

    def candidates(self, region) -> list[Box]:
        """The boxes that may meet some box of region, in insertion order."""
        found = self.index.meeting(region)
        if found is None:
            return list(self.order)
        return sorted(found, key=self.order.__getitem__)


def region_minus_set(region: list[Box], sub: BoxSet) -> list[Box]:
    return region_minus(region, sub.candidates(region)) if sub else list(region)


def region_inter_set(region: list[Box], other: BoxSet) -> list[Box]:
    """region_inter(region, other), each box of region against its own candidates only."""
    out = []
    for x in region:
        for y in other.candidates((x,)):
            z = box_inter(x, y)
            if z is not None:
                out.append(z)
    return out


__all__ = ["BoxSet", "NsIndex", "region_minus_set", "region_inter_set", "Box", "Peer", "L4", "ANY_PEER", "ANY_L4", "make_nets", "box_minus", "box_inter",
           "region_minus", "region_inter", "NotExpressible", "L4_PROTOS"]
