"""Which of many networks contain an address, without testing each network.

Policies at scale name a few networks very often (0.0.0.0/0 and 10.0.0.0/8 in thousands of
rules) and many networks once (a /24 per node): an address is looked up once per prefix length
in use, equal networks are looked up once, and the answer is built once per distinct set of
networks.
"""
from __future__ import annotations

import ipaddress

_BITS = {4: 32, 6: 128}
_DIGITS = frozenset("0123456789")


def address(text) -> tuple[int, int] | None:
    """(version, integer) of ipaddress.ip_address(text); None where it raises. Plain dotted
    IPv4 (every pod address) is read directly: ipaddress takes ~20 us per address, and a
    universe reads every pod's. Anything else is left to ipaddress, so it judges validity."""
    if type(text) is str:
        parts = text.split(".")
        if len(parts) == 4:
            x = 0
            for p in parts:
                # the forms ipaddress accepts: 1-3 ASCII digits, no leading zero, <= 255
                if not p or len(p) > 3 or not _DIGITS.issuperset(p) or (
                        p[0] == "0" and len(p) > 1) or int(p) > 255:
                    break
                x = x << 8 | int(p)
            else:
                return 4, x
    try:
        a = ipaddress.ip_address(text)
    except (ValueError, TypeError):
        return None
    return a.version, int(a)


def networks(texts) -> list:
    """The valid networks among texts (strict=False; invalid ones are left out). Each distinct
    text is parsed once: thousands of rules repeat 0.0.0.0/0 and 10.0.0.0/8."""
    out = []
    parsed: dict[str, object] = {}
    for c in texts:
        text = str(c).strip()
        if text not in parsed:
            try:
                parsed[text] = ipaddress.ip_network(text, strict=False)
            except ValueError:
                parsed[text] = None
        if parsed[text] is not None:
            out.append(parsed[text])
    return out


class CidrIndex:
    """index(address) -> indexes (ascending) of the networks in `nets` that contain it: the same
    as `tuple(i for i, n in enumerate(nets) if a.version == n.version and a in n)`.

    distinct(address) is a smaller key with the same equality (one id per distinct network),
    and indexes(key) turns it into the full answer (computed once per key)."""

    def __init__(self, nets: list):
        self._members: list[list[int]] = []          # distinct network -> indexes in nets
        by_len: dict[tuple, dict[int, int]] = {}
        for i, n in enumerate(nets):
            found = by_len.setdefault((n.version, n.prefixlen), {})
            at = int(n.network_address)
            d = found.get(at)
            if d is None:
                d = found[at] = len(self._members)
                self._members.append([])
            self._members[d].append(i)
        self._lengths = [(v, found, (1 << _BITS[v]) - (1 << (_BITS[v] - plen)))
                         for (v, plen), found in sorted(by_len.items())]
        self._full: dict[tuple, tuple] = {}

    def distinct(self, a) -> tuple:
        return self.distinct_int(a.version, int(a))

    def distinct_int(self, v: int, x: int) -> tuple:
        """distinct() of the address with this version and integer value."""
        got = []
        for lv, found, mask in self._lengths:
            if lv == v:
                d = found.get(x & mask)
                if d is not None:
                    got.append(d)
        got.sort()
        return tuple(got)

    def indexes(self, key: tuple) -> tuple:
        got = self._full.get(key)
        if got is None:
            got = self._full[key] = tuple(sorted(i for d in key for i in self._members[d]))
        return got

    def __call__(self, a) -> tuple:
        return self.indexes(self.distinct(a))
