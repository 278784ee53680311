"""The cluster's own address ranges (pods, nodes), which Calico matches by address and Cilium
never does: every "do these nets reach into the cluster?" question is answered here.

An inventory lists one pod range per node and one address per node, so a large cluster has
thousands. They are summarised once (ranges inside another dropped, adjacent ones of a role
merged): the union of addresses is unchanged, so every overlap and cover answer is the same,
each question costs a few comparisons, and a report names a handful of ranges, not 10,000.
"""
from __future__ import annotations

import ipaddress
from functools import lru_cache

# ranges a cluster may use when no inventory says which (pods, nodes)
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
CLUSTER_ROLES = ("pod", "node", "ippool", "flannel")
NO_INVENTORY = "private range, no inventory"
MAX_NAMED = 6          # ranges named in one message; the rest are counted


@lru_cache(maxsize=1 << 16)      # a cluster lists one range per node: keep them all
def net(text: str):
    return ipaddress.ip_network(text, strict=False)


def _summarise(pairs) -> list[tuple]:
    """(network, roles) pairs -> [(network, (role, ...))] with the same union of addresses:
    a range inside another is dropped (its role joins the container's), then adjacent ranges
    of the same roles are merged."""
    pairs = sorted(set(pairs), key=lambda p: (p[0].version, int(p[0].network_address),
                                              p[0].prefixlen, p[1]))
    kept: list[list] = []          # [network, set of roles], sorted, no one inside another
    for n, role in pairs:
        if kept and kept[-1][0].version == n.version and n.subnet_of(kept[-1][0]):
            kept[-1][1].add(role)
            continue
        kept.append([n, {role}])
    by_roles: dict[tuple, list] = {}
    for n, roles in kept:
        by_roles.setdefault(tuple(sorted(roles)), []).append(n)
    out = []
    for roles, nets in by_roles.items():
        for v in (4, 6):
            out.extend((m, roles) for m in
                       ipaddress.collapse_addresses([x for x in nets if x.version == v]))
    return sorted(out, key=lambda p: (p[0].version, p[0]))


class ClusterRanges:
    """Pod/node ranges from the inventory; without one, every private range (a cluster may use
    any of them, so checks against these err towards reporting)."""

    def __init__(self, inventory=None):
        self.known = inventory is not None
        if inventory is None:
            self.ranges = [(net(c), (NO_INVENTORY,)) for c in PRIVATE_RANGES]
        else:
            self.ranges = _summarise((net(c.cidr), c.role) for c in inventory.cidrs
                                     if c.role in CLUSTER_ROLES)
        self.networks = [n for n, _ in self.ranges]
        self._hits: dict = {}        # rules repeat the same nets: answers kept per nets


    def overlapping(self, pairs) -> list[tuple]:
        """The summarised ranges that share an address with the union of (cidr, excepts)."""
        key = tuple(pairs)
        hit = self._hits.get(key)
        if hit is None:
            ns = _union(key)
            hit = self._hits[key] = [(r, roles) for r, roles in self.ranges
                                     if any(r.version == n.version and r.overlaps(n)
                                            for n in ns)]
        return hit

    def overlaps(self, pairs) -> bool:
        return bool(self.overlapping(pairs))

    def covered_by(self, pairs) -> bool:
        """Every cluster address is inside the union of (cidr, excepts) pairs."""
        if not self.ranges:
            return False
        inside = _union(tuple(pairs))
        return all(_within(r, inside) for r in self.networks)

    @staticmethod
    def describe(hits: list[tuple]) -> str:
        """'10.244.0.0/14 (flannel, pod), 172.16.0.0/20 (node)' with at most MAX_NAMED named."""
        parts = [f"{r} ({', '.join(roles)})" for r, roles in hits[:MAX_NAMED]]
        if len(hits) > MAX_NAMED:
            parts.append(f"and {len(hits) - MAX_NAMED} more")
        return ", ".join(parts)


def plain(nets) -> tuple:
    """Networks without excepts, as the (cidr, excepts) pairs the methods above take."""
    return tuple((str(n), ()) for n in nets)


@lru_cache(maxsize=4096)
def _union(pairs: tuple) -> list:
    """Disjoint sorted networks covering cidrs minus their excepts."""
    out = []
    for c, ex in pairs:
        n = net(c)
        pieces = [n]
        for e in (net(x) for x in ex):
            nxt = []
            for p in pieces:
                if p.version != e.version or not p.overlaps(e):
                    nxt.append(p)
                elif not p.subnet_of(e):
                    nxt.extend(p.address_exclude(e))
            pieces = nxt
        out.extend(pieces)
    merged = []
    for v in (4, 6):
        merged.extend(ipaddress.collapse_addresses([p for p in out if p.version == v]))
    return merged


def _within(r, disjoint: list) -> bool:
    """r lies inside the union of disjoint networks (each either inside r or containing it)."""
    total = 0
    for m in disjoint:
        if m.version != r.version or not m.overlaps(r):
            continue
        if r.subnet_of(m):
            return True
        total += m.num_addresses
    return total == r.num_addresses
