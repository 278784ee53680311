"""Cluster ranges: summarised once, same answers as a scan over every range, short messages."""
import ipaddress
import random

from generator.inventory.model import Cidr
from generator.translate.ranges import ClusterRanges, MAX_NAMED


class Inv:
    def __init__(self, cidrs):
        self.cidrs = cidrs


def _cluster(n_nodes=300):
    cidrs = [Cidr("10.244.0.0/14", "flannel net-conf", "flannel")]
    for i in range(n_nodes):
        cidrs.append(Cidr(f"10.{244 + i // 256}.{i % 256}.0/24", f"node {i}", "pod"))
        cidrs.append(Cidr(f"172.16.{i // 256}.{i % 256}/32", f"node {i} address", "node"))
    cidrs.append(Cidr("10.96.0.0/12", "service", "service"))     # not a cluster endpoint range
    return Inv(cidrs)


def _naive_overlap(inv, pairs):
    """Reference: an address of the union of (cidr - excepts) inside some raw range."""
    ranges = [ipaddress.ip_network(c.cidr) for c in inv.cidrs
              if c.role in ("pod", "node", "ippool", "flannel")]
    for cidr, ex in pairs:
        n = ipaddress.ip_network(cidr)
        for r in ranges:
            if r.version != n.version or not r.overlaps(n):
                continue
            part = r if r.subnet_of(n) else n
            if not any(part.subnet_of(ipaddress.ip_network(e)) for e in ex
                       if ipaddress.ip_network(e).version == part.version):
                if not ex or _some_address_left(part, ex):
                    return True
    return False


def _some_address_left(part, ex):
    rest = [part]
    for e in map(ipaddress.ip_network, ex):
        rest = [y for x in rest for y in ([x] if not x.overlaps(e) else
                                          ([] if x.subnet_of(e) else x.address_exclude(e)))]
    return bool(rest)


def test_summary_keeps_the_union_and_names_few_ranges():
    inv = _cluster()
    cr = ClusterRanges(inv)
    assert len(cr.ranges) < 10
    text = cr.describe(cr.overlapping([("0.0.0.0/0", ())]))
    assert text.startswith("10.244.0.0/14 (flannel, pod), 172.16.0.0/")
    assert "10.96" not in text
    assert text.count("(") <= MAX_NAMED + 1


def test_excepts_are_honoured():
    cr = ClusterRanges(_cluster())
    outside = [("0.0.0.0/0", ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))]
    assert not cr.overlaps(outside)
    assert cr.overlaps([("0.0.0.0/0", ("10.0.0.0/8",))])      # nodes in 172.16/12 remain
    assert cr.covered_by([("10.0.0.0/8", ()), ("172.16.0.0/16", ())])
    assert not cr.covered_by([("10.0.0.0/8", ("10.245.0.0/16",)), ("172.16.0.0/16", ())])
    # covered by two networks together, neither alone
    assert cr.covered_by([("10.244.0.0/15", ()), ("10.246.0.0/15", ()), ("172.16.0.0/22", ())])


def test_overlap_agrees_with_a_scan_of_every_raw_range():
    inv = _cluster(120)
    cr = ClusterRanges(inv)
    rng = random.Random(3)
    for _ in range(300):
        a, b = rng.choice((10, 172)), rng.randrange(0, 256)
        plen = rng.choice((8, 12, 14, 16, 20, 24, 28, 32))
        cidr = str(ipaddress.ip_network(f"{a}.{b}.{rng.randrange(256)}.0/{plen}", strict=False))
        ex = ()
        if rng.random() < 0.5 and plen < 30:
            n = ipaddress.ip_network(cidr)
            sub = list(n.subnets(new_prefix=min(32, plen + rng.choice((1, 2, 8)))))
            ex = (str(rng.choice(sub)),)
        pairs = [(cidr, ex)]
        assert cr.overlaps(pairs) == _naive_overlap(inv, pairs), pairs


def test_without_inventory_the_private_ranges_count():
    cr = ClusterRanges(None)
    assert cr.overlaps([("10.1.0.0/16", ())])
    assert "private range, no inventory" in cr.describe(cr.overlapping([("10.1.0.0/16", ())]))
