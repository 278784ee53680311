"""Network choices for Cilium during the migration: its pod CIDR and its tunnel.

Both run side by side with the old CNI on every node until the last node has moved, so:
- Cilium's cluster-pool CIDR must overlap nothing in use (pod CIDRs, Calico IPPools, the Flannel
  network, the service CIDR, node addresses): an overlap makes routes ambiguous and drops
  traffic between migrated and unmigrated pods. Pool entries can only be appended later.
- Cilium's VXLAN device must not bind the UDP port of the old CNI's VXLAN device (Flannel and
  Canal 8472, which is also Cilium's default; Calico 4789) or the agent fails to start.
"""
from __future__ import annotations

import ipaddress
import json
import math

from ..errors import UserError
from ..inventory.model import Cidr, Inventory
from .model import Tunnel

# Tried in order; the first that overlaps nothing and holds every node wins.
CANDIDATES = ("10.245.0.0/16", "10.42.0.0/16", "172.20.0.0/16", "10.100.0.0/16",
              "192.168.128.0/17", "10.201.0.0/16", "172.21.0.0/16", "172.30.0.0/16")
# Where larger blocks are searched when the cluster is too big for the candidates above.
LARGE_SPACES = ("10.0.0.0/8", "172.16.0.0/12", "100.64.0.0/10")

VXLAN_PORT = 8473          # Cilium's default 8472 is Flannel's: move off it
GENEVE_PORT = 6081
# The snapshot shows node addresses, not the networks around the cluster.
OUTSIDE = ("; networks outside the cluster (VPC, peerings, on-premises) are not visible here: "
           "pass --cilium-pod-cidr if this range is routed there")
ROLE_NAMES = {"pod": "pod CIDR", "service": "service CIDR", "node": "node address",
              "ippool": "Calico IPPool", "flannel": "Flannel network"}


def _net(text: str):
    return ipaddress.ip_network(text, strict=False)


def _parsed(cidrs: list[Cidr]) -> list[tuple[object, Cidr]]:
    return [(_net(c.cidr), c) for c in cidrs]


def _overlaps(net, parsed: list[tuple[object, Cidr]]) -> list[Cidr]:
    return [c for other, c in parsed if other.version == net.version and net.overlaps(other)]


def _describe(overlaps: list[Cidr], limit: int = 3) -> str:
    # cluster-wide ranges first: they say more than one node's /24 or address
    overlaps = sorted(overlaps, key=lambda c: c.origin.startswith("node "))
    parts = [f"{ROLE_NAMES.get(c.role, c.role)} {c.cidr} ({c.origin})" for c in overlaps[:limit]]
    more = len(overlaps) - limit
    return ", ".join(parts) + (f" and {more} more" if more > 0 else "")


def required_prefix(node_count: int, mask: int = 24) -> int:
    """The longest prefix whose pool still gives every node one /mask block."""
    need = max(1, node_count)
    return mask - math.ceil(math.log2(need)) if need > 1 else mask


def choose_pod_cidr(inventory: Inventory, requested: str | None, *, mask: int = 24
                    ) -> tuple[str, str]:
    """(cidr, reason): the requested CIDR validated, or the first free candidate."""
    cidrs = inventory.cidrs
    parsed = _parsed(cidrs)
    nodes = len(inventory.nodes)
    longest = required_prefix(nodes, mask)
    summary = f"clear of the {len(cidrs)} CIDRs in use ({_in_use_summary(cidrs)})"
    if requested:
        try:
            net = ipaddress.ip_network(requested.strip())
        except ValueError as e:
            hint = ""
            if "host bits" in str(e):
                hint = f": host bits set, did you mean {_net(requested.strip())}?"
            raise UserError(f"malformed CIDR {requested!r}{hint}",
                            field="--cilium-pod-cidr") from None
        if net.version != 4:
            raise UserError(f"{net}: the migration uses Cilium's IPv4 cluster-pool; give an IPv4 "
                            "CIDR", field="--cilium-pod-cidr")
        if net.is_loopback or net.is_link_local or net.is_multicast or net.is_reserved \
                or net.is_unspecified or net.overlaps(ipaddress.ip_network("0.0.0.0/8")):
            raise UserError(f"{net} is a special-purpose range (loopback, link-local, multicast "
                            "or reserved) and cannot carry pod traffic", field="--cilium-pod-cidr")
        if net.prefixlen > mask:
            raise UserError(f"{net} is smaller than one per-node block /{mask}",
                            field="--cilium-pod-cidr")
        if net.prefixlen > longest:
            raise UserError(f"{net} holds {2 ** (mask - net.prefixlen)} /{mask} node blocks but "
                            f"the cluster has {nodes} nodes; use a /{longest} or larger",
                            field="--cilium-pod-cidr")
        clash = _overlaps(net, parsed)
        if clash:
            raise UserError(f"{net} overlaps {_describe(clash)}", field="--cilium-pod-cidr")
        return str(net), f"requested; {summary}"
    for cand in CANDIDATES:
        net = _net(cand)
        if net.prefixlen <= longest and not _overlaps(net, parsed):
            return str(net), f"first candidate {summary}; room for " \
                             f"{2 ** (mask - net.prefixlen)} nodes at /{mask}{OUTSIDE}"
    size = min(longest, 16)
    for space in LARGE_SPACES:
        if _net(space).prefixlen > size:
            continue
        # aligned blocks of the needed size, lowest first: deterministic
        for net in _net(space).subnets(new_prefix=size):
            if not _overlaps(net, parsed):
                return str(net), f"first /{net.prefixlen} in {space} {summary} (every " \
                                 f"candidate was taken); room for " \
                                 f"{2 ** (mask - net.prefixlen)} nodes at /{mask}{OUTSIDE}"
    raise UserError("no free private range is large enough for Cilium's pod CIDR; "
                    "pass --cilium-pod-cidr")


def _in_use_summary(cidrs: list[Cidr]) -> str:
    """The wide ranges in use (node /32s and per-node /24s are summarised by count)."""
    wide, nodes, per_node = [], 0, 0
    seen = set()
    for c in cidrs:
        if c.role == "node":
            nodes += 1
        elif c.origin.startswith("node "):
            per_node += 1
        elif (c.role, c.cidr) not in seen:
            seen.add((c.role, c.cidr))
            wide.append(f"{ROLE_NAMES.get(c.role, c.role)} {c.cidr}")
    if per_node:
        wide.append(f"{per_node} node pod CIDRs")
    if nodes:
        wide.append(f"{nodes} node addresses")
    return ", ".join(wide) or "none found"


def _ports_in_use(inventory: Inventory) -> dict[int, str]:
    """UDP ports something on the nodes already binds: the old CNI's tunnel and host ports."""
    used: dict[int, str] = {}
    cni = inventory.cni
    if cni.tunnel_port:
        used[cni.tunnel_port] = f"{cni.kind} {cni.encapsulation} tunnel (UDP {cni.tunnel_port})"
    for pod in inventory.pods:
        if not pod.host_network:
            continue
        for p in pod.ports:
            if p.protocol == "UDP":
                used.setdefault(p.port, f"host-network pod {pod.namespace}/{pod.name} "
                                        f"UDP {p.port}")
    for item in inventory.objects:
        o = item.obj
        kind = o.get("kind")
        meta = o.get("metadata") or {}
        if kind == "Pod":  # hostPort mappings bind the node's port as well
            for c in (o.get("spec") or {}).get("containers") or []:
                for p in c.get("ports") or []:
                    if p.get("hostPort") and (p.get("protocol") or "TCP") == "UDP":
                        used.setdefault(int(p["hostPort"]), f"hostPort of pod "
                                        f"{meta.get('namespace')}/{meta.get('name')}")
        elif kind == "FelixConfiguration":
            # a configured port is avoided even if no VXLAN pool uses it yet
            spec = o.get("spec") or {}
            for fld in ("vxlanPort", "vxlanPortV6"):
                if spec.get(fld):
                    used.setdefault(int(spec[fld]), f"FelixConfiguration {meta.get('name')} "
                                                    f"spec.{fld}")
        elif kind == "ConfigMap" and "net-conf.json" in (o.get("data") or {}):
            port = _flannel_port(o["data"]["net-conf.json"])
            if port:
                used.setdefault(port, f"ConfigMap {meta.get('namespace')}/{meta.get('name')} "
                                      f"net-conf.json Backend.Port")
    return used


def _flannel_port(text: str) -> int | None:
    try:
        backend = json.loads(text).get("Backend") or {}
        return int(backend.get("Port") or 0) or None
    except (ValueError, TypeError, AttributeError):
        return None  # detection already reported malformed configs of the CNI in use


def choose_tunnel(inventory: Inventory) -> Tunnel:
    """VXLAN on 8473 unless that port is taken; then Geneve on 6081; then the next free port."""
    used = _ports_in_use(inventory)
    cni = inventory.cni
    old = (f"{cni.kind} uses UDP {cni.tunnel_port}" if cni.tunnel_port
           else f"{cni.kind} uses {cni.encapsulation}, no UDP tunnel port")
    if VXLAN_PORT not in used:
        return Tunnel("vxlan", VXLAN_PORT,
                      f"vxlan on UDP {VXLAN_PORT}: Cilium's default 8472 is Flannel's port; "
                      f"{old}, so {VXLAN_PORT} clashes with nothing")
    if GENEVE_PORT not in used:
        return Tunnel("geneve", GENEVE_PORT,
                      f"geneve on UDP {GENEVE_PORT}: UDP {VXLAN_PORT} is taken by "
                      f"{used[VXLAN_PORT]}")
    port = next(p for p in range(VXLAN_PORT + 1, 65536) if p not in used)
    return Tunnel("vxlan", port, f"vxlan on UDP {port}: UDP {VXLAN_PORT} is taken by "
                                 f"{used[VXLAN_PORT]} and UDP {GENEVE_PORT} by {used[GENEVE_PORT]}")
