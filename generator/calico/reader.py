"""Read Calico and Kubernetes policy objects into one normalised PolicySet.

Accepted shapes
- projectcalico.org/v3 (calicoctl / Calico API server) and crd.projectcalico.org/v1 (the CRD
  storage objects `kubectl get ...crd.projectcalico.org` returns). v1 quirks handled: tier
  prefixes in names (`default.foo`), lower-case actions/protocols/types, ports as strings, labels
  in the `projectcalico.org/metadata` annotation, and no `types` meaning Ingress AND Egress.
- networking.k8s.io/v1 NetworkPolicy: kept raw, and converted to a Calico policy the way
  kube-controllers/libcalico-go convert it (tier default, order 1000, name knp.default.<name>,
  pod selectors ANDed with projectcalico.org/orchestrator == 'k8s').
- Lists are expanded by generator.yamlio. Staged*, Profile, Helm values and unrelated kinds become
  Skipped entries (a snapshot carries many kinds); invalid input raises UserError naming the file,
  the object and the field.

Validation follows the Calico v3 API validator / CRD rules that matter for the verdict: actions,
protocols, ports only with TCP/UDP/SCTP/UDPLite, ICMP fields, CIDRs, selectors, port ranges,
preDNAT/doNotTrack/applyOnForward combinations, unknown fields.
"""
from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from ..errors import UserError, object_name
from ..yamlio import Loaded
from .model import (
    INF_ORDER, EntityRule, HostEndpoint, HTTPMatch, ICMPMatch, NetworkSet, Policy, PolicySet,
    PortRange, Rule, ServiceAccountMatch, ServiceMatch, Skipped, SourceRef, Tier,
)
from .selector import GLOBAL, SelectorError, parse as parse_selector, tokenize

V3 = "projectcalico.org/v3"
V1 = "crd.projectcalico.org/v1"
K8S_NP_APIS = ("networking.k8s.io/v1", "networking.k8s.io/v1beta1", "extensions/v1beta1")
METADATA_ANNOTATION = "projectcalico.org/metadata"

ACTIONS = ("Allow", "Deny", "Pass", "Log")
PROTOCOLS = ("TCP", "UDP", "ICMP", "ICMPv6", "SCTP", "UDPLite")
PORT_PROTOCOLS = {"TCP", "UDP", "SCTP", "UDPLite", 6, 17, 132, 136}
ICMP_PROTOCOLS = {"ICMP", "ICMPv6", 1, 58}
STAGED = {"StagedGlobalNetworkPolicy": "GlobalNetworkPolicy",
          "StagedNetworkPolicy": "NetworkPolicy",
          "StagedKubernetesNetworkPolicy": "KubernetesNetworkPolicy"}
NOT_MODELLED = {
    "Profile": "Calico Profile: namespace/service-account profiles are implied by the "
               "evaluator (pods allow), other profiles are not translated",
}

POLICY_FIELDS = {"order", "tier", "selector", "namespaceSelector", "serviceAccountSelector",
                 "types", "ingress", "egress", "doNotTrack", "preDNAT", "applyOnForward",
                 "performanceHints"}
RULE_FIELDS = {"action", "protocol", "notProtocol", "icmp", "notICMP", "ipVersion", "source",
               "destination", "http", "metadata"}
ENTITY_FIELDS = {"nets", "notNets", "selector", "notSelector", "namespaceSelector", "ports",
                 "notPorts", "serviceAccounts", "services", "domains"}

_PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
# Name formats of the Calico v3 validator (libcalico-go lib/validator/v3).
_LABEL_FMT = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN_FMT = rf"{_LABEL_FMT}(\.{_LABEL_FMT})*"
GNP_NAME = re.compile(rf"^({_LABEL_FMT}\.)?{_LABEL_FMT}$")
NP_NAME = re.compile(rf"^(({_LABEL_FMT})(\.{_LABEL_FMT})?"
                     rf"|((?:knp|ossg)\.default\.({_SUBDOMAIN_FMT})))$")
TIER_NAME = re.compile(rf"^{_LABEL_FMT}$")


def _show(value, limit: int = 60) -> str:
    """A value for a one-line message, shortened."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class _Ctx:
    """Where we are: builds UserErrors that name file, object and field."""
    __slots__ = ("file", "obj", "v1")

    def __init__(self, item: Loaded, v1: bool):
        self.file = item.where
        self.obj = object_name(item.obj)
        self.v1 = v1

    def error(self, message: str, field: str | None = None) -> UserError:
        return UserError(message, file=self.file, obj=self.obj, field=field)


# --------------------------------------------------------------------------- small parsers

def _mapping(ctx: _Ctx, value, field: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ctx.error(f"expected a mapping, got {type(value).__name__} {_show(value)}", field)
    return value


def _list(ctx: _Ctx, value, field: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ctx.error(f"expected a list, got {type(value).__name__} {_show(value)}", field)
    return value


def _str(ctx: _Ctx, value, field: str) -> str:
    if not isinstance(value, str):
        raise ctx.error(f"expected a string, got {type(value).__name__} {_show(value)}", field)
    return value


def _check_fields(ctx: _Ctx, raw: dict, allowed: set, field: str) -> None:
    if allowed.issuperset(raw):
        return
    unknown = sorted(str(k) for k in raw if k not in allowed)
    if unknown:
        raise ctx.error(f"unknown field(s) {', '.join(unknown)} "
                        f"(expected some of: {', '.join(sorted(allowed))})", field)


def _selector(ctx: _Ctx, value, field: str) -> str | None:
    """Validated selector text; None when absent or empty."""
    if value is None:
        return None
    text = _str(ctx, value, field)
    try:
        parse_selector(text)
    except SelectorError as e:
        raise ctx.error(e.describe(), field) from None
    return text if text.strip(" \t") else None


def _order(ctx: _Ctx, value, field: str) -> float:
    if value is None:
        return INF_ORDER
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ctx.error(f"order must be a number, got {_show(value)}", field)
    return value


def _bool(ctx: _Ctx, value, field: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ctx.error(f"expected true or false, got {_show(value)}", field)
    return value


def _action(ctx: _Ctx, value, field: str) -> str:
    if isinstance(value, str):
        if value in ACTIONS:
            return value
        # Raw v1 objects carry lower-case actions (the old v1 API wrote them that way).
        if ctx.v1:
            for a in ACTIONS:
                if value.lower() == a.lower():
                    return a
    hint = " (lower case is only accepted in crd.projectcalico.org/v1 objects)" \
        if isinstance(value, str) and value.capitalize() in ACTIONS else ""
    raise ctx.error(f"invalid action {_show(value)}: must be one of {', '.join(ACTIONS)}{hint}",
                    field)


def _protocol(ctx: _Ctx, value, field: str) -> str | int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ctx.error(f"invalid protocol {_show(value)}", field)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int):
        if 1 <= value <= 255:
            return value
        raise ctx.error(f"invalid protocol number {value}: must be 1-255", field)
    if isinstance(value, str):
        if value in PROTOCOLS:
            return value
        if ctx.v1:
            for p in PROTOCOLS:
                if value.lower() == p.lower():
                    return p
    raise ctx.error(f"invalid protocol {_show(value)}: must be one of {', '.join(PROTOCOLS)} "
                    f"or a number 1-255", field)


@lru_cache(maxsize=65536)
def _cidr_text(text: str) -> str | None:
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        return None


def _nets(ctx: _Ctx, value, field: str) -> tuple[str, ...]:
    out = []
    for i, n in enumerate(_list(ctx, value, field)):
        norm = _cidr_text(n) if isinstance(n, str) else None
        if norm is None:
            raise ctx.error(f"invalid CIDR {_show(n)}", f"{field}[{i}]")
        out.append(norm)
    return tuple(out)


def _port(ctx: _Ctx, value, field: str) -> PortRange:
    if isinstance(value, bool):
        raise ctx.error(f"invalid port {_show(value)}", field)
    if isinstance(value, int):
        if 1 <= value <= 65535:
            return PortRange(value, value)
        raise ctx.error(f"invalid port {value}: must be 1-65535", field)
    if isinstance(value, str):
        s = value.strip()
        if s.isdigit():
            return _port(ctx, int(s), field)
        if ":" in s:
            lo, _, hi = s.partition(":")
            if not (lo.strip().isdigit() and hi.strip().isdigit()):
                raise ctx.error(f"invalid port range {_show(value)}: expected 'first:last'", field)
            a, b = int(lo), int(hi)
            if not (1 <= a <= 65535 and 1 <= b <= 65535) or a > b:
                raise ctx.error(f"invalid port range {_show(value)}: "
                                "need 1 <= first <= last <= 65535", field)
            return PortRange(a, b)
        if len(s) <= 15 and _PORT_NAME.match(s) and any(c.isalpha() for c in s) \
                and "--" not in s:
            return PortRange(0, 0, s)
    raise ctx.error(f"invalid port {_show(value)}: expected a number, 'first:last' or a port name",
                    field)


def _ports(ctx: _Ctx, value, field: str) -> tuple[PortRange, ...]:
    return tuple(_port(ctx, p, f"{field}[{i}]") for i, p in enumerate(_list(ctx, value, field)))


def _icmp(ctx: _Ctx, value, field: str) -> ICMPMatch | None:
    if value is None:
        return None
    raw = _mapping(ctx, value, field)
    _check_fields(ctx, raw, {"type", "code"}, field)
    t, c = raw.get("type"), raw.get("code")
    for name, v, hi in (("type", t, 254), ("code", c, 255)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= hi):
            raise ctx.error(f"invalid ICMP {name} {_show(v)}: must be 0-{hi}", f"{field}.{name}")
    if c is not None and t is None:
        raise ctx.error("ICMP code specified without an ICMP type", field)
    return ICMPMatch(t, c)


# --------------------------------------------------------------------------- rules

_EMPTY_ENTITY = EntityRule()


def _entity(ctx: _Ctx, value, field: str) -> EntityRule:
    raw = _mapping(ctx, value, field)
    if not raw:
        return _EMPTY_ENTITY
    _check_fields(ctx, raw, ENTITY_FIELDS, field)
    sa = None
    if raw.get("serviceAccounts") is not None:
        f = f"{field}.serviceAccounts"
        sar = _mapping(ctx, raw["serviceAccounts"], f)
        _check_fields(ctx, sar, {"names", "selector"}, f)
        names = tuple(_str(ctx, n, f"{f}.names[{i}]")
                      for i, n in enumerate(_list(ctx, sar.get("names"), f"{f}.names")))
        sa = ServiceAccountMatch(names, _selector(ctx, sar.get("selector"), f"{f}.selector"))
    svc = None
    if raw.get("services") is not None:
        f = f"{field}.services"
        sr = _mapping(ctx, raw["services"], f)
        _check_fields(ctx, sr, {"name", "namespace"}, f)
        if not sr.get("name"):
            raise ctx.error("services must specify a service name", f"{f}.name")
        ns = sr.get("namespace")
        svc = ServiceMatch(_str(ctx, sr["name"], f"{f}.name"),
                           _str(ctx, ns, f"{f}.namespace") if ns else None)
        for other in ("selector", "notSelector", "namespaceSelector", "nets", "notNets",
                      "serviceAccounts"):
            if raw.get(other):
                raise ctx.error(f"cannot specify {other} and services on the same rule", field)
        if field.endswith("destination") and (raw.get("ports") or raw.get("notPorts")):
            raise ctx.error("ports and notPorts cannot be specified with services", field)
    sel_text = raw.get("selector")
    if isinstance(sel_text, str) and "global(" in sel_text:
        raise ctx.error("global() can only be used in an EntityRule namespaceSelector",
                        f"{field}.selector")
    ns_text = raw.get("namespaceSelector")
    if isinstance(ns_text, str) and "global(" in ns_text and ns_text != "global()":
        try:
            toks = tokenize(ns_text)
        except SelectorError:
            toks = []
        if len(toks) != 2 or toks[0][0] != GLOBAL:
            raise ctx.error("global() cannot be combined with other selectors",
                            f"{field}.namespaceSelector")
    return EntityRule(
        nets=_opt(_nets, ctx, raw, "nets", field, ()),
        not_nets=_opt(_nets, ctx, raw, "notNets", field, ()),
        selector=_opt(_selector, ctx, raw, "selector", field, None),
        not_selector=_opt(_selector, ctx, raw, "notSelector", field, None),
        namespace_selector=_opt(_selector, ctx, raw, "namespaceSelector", field, None),
        ports=_opt(_ports, ctx, raw, "ports", field, ()),
        not_ports=_opt(_ports, ctx, raw, "notPorts", field, ()),
        service_accounts=sa,
        services=svc,
        domains=_opt(_strs, ctx, raw, "domains", field, ()),
    )


def _opt(parse, ctx: _Ctx, raw: dict, key: str, field: str, empty):
    """parse(ctx, raw[key], "<field>.<key>"), or what parse gives for None (`empty`) when the
    key is absent: the field path is built only when there is a value to check (most keys of
    most rules are absent; 56,000 entities at size L)."""
    value = raw.get(key)
    return empty if value is None else parse(ctx, value, f"{field}.{key}")


def _strs(ctx: _Ctx, value, field: str) -> tuple[str, ...]:
    return tuple(_str(ctx, d, f"{field}[{i}]") for i, d in enumerate(_list(ctx, value, field)))


def _http(ctx: _Ctx, value, field: str) -> HTTPMatch | None:
    if value is None:
        return None
    raw = _mapping(ctx, value, field)
    _check_fields(ctx, raw, {"methods", "paths"}, field)
    methods = tuple(_str(ctx, m, f"{field}.methods[{i}]")
                    for i, m in enumerate(_list(ctx, raw.get("methods"), f"{field}.methods")))
    paths = []
    for i, p in enumerate(_list(ctx, raw.get("paths"), f"{field}.paths")):
        f = f"{field}.paths[{i}]"
        pr = _mapping(ctx, p, f)
        if len(pr) != 1 or next(iter(pr)) not in ("exact", "prefix"):
            raise ctx.error("a path match needs exactly one of exact or prefix", f)
        kind = next(iter(pr))
        path = _str(ctx, pr[kind], f"{f}.{kind}")
        if not path.startswith("/") or any(c in path for c in "? #"):
            raise ctx.error(f"invalid path {_show(path)}: must start with '/' and not contain "
                            "'?', ' ' or '#'", f"{f}.{kind}")
        paths.append((kind, path))
    if len(set(methods)) != len(methods):
        raise ctx.error("duplicate HTTP methods", f"{field}.methods")
    return HTTPMatch(methods, tuple(paths))


def _ip_version_of(net: str) -> int:
    return 6 if ":" in net else 4


def _rule(ctx: _Ctx, value, field: str, index: int) -> Rule:
    raw = _mapping(ctx, value, field)
    _check_fields(ctx, raw, RULE_FIELDS, field)
    if "action" not in raw:
        raise ctx.error("rule has no action", field)
    action = _action(ctx, raw["action"], f"{field}.action")
    proto = _opt(_protocol, ctx, raw, "protocol", field, None)
    not_proto = _opt(_protocol, ctx, raw, "notProtocol", field, None)
    icmp = _opt(_icmp, ctx, raw, "icmp", field, None)
    not_icmp = _opt(_icmp, ctx, raw, "notICMP", field, None)
    ipv = raw.get("ipVersion")
    if ipv is not None and ipv not in (4, 6):
        raise ctx.error(f"invalid ipVersion {ipv!r}: must be 4 or 6", f"{field}.ipVersion")
    src = _opt(_entity, ctx, raw, "source", field, _EMPTY_ENTITY)
    dst = _opt(_entity, ctx, raw, "destination", field, _EMPTY_ENTITY)
    http = _opt(_http, ctx, raw, "http", field, None)

    if (icmp or not_icmp) and proto not in ICMP_PROTOCOLS:
        raise ctx.error("ICMP fields require protocol ICMP or ICMPv6", field)
    if ipv is not None:
        for p in (proto, not_proto):
            if p in ("ICMP", 1) and ipv != 4 or p in ("ICMPv6", 58) and ipv != 6:
                raise ctx.error(f"protocol {p} does not match ipVersion {ipv}", field)
        for side, ent in (("source", src), ("destination", dst)):
            for n in ent.nets + ent.not_nets:
                if _ip_version_of(n) != ipv:
                    raise ctx.error(f"{n} is not an IPv{ipv} network (ipVersion {ipv})",
                                    f"{field}.{side}")
    for side, ent in (("source", src), ("destination", dst)):
        ports = ent.ports + ent.not_ports
        if not ports:
            continue
        if proto is None and not all(p.is_named for p in ports):
            # Calico allows only named ports without a protocol (they carry their own).
            raise ctx.error("rules with numeric port or port range must set protocol to TCP, "
                            "UDP or SCTP", f"{field}.{side}")
        if proto is not None and proto not in PORT_PROTOCOLS:
            raise ctx.error(f"rules that specify ports must set protocol to TCP, UDP or SCTP, "
                            f"not {proto}", f"{field}.{side}")
    families = {_ip_version_of(n) for e in (src, dst) for n in e.nets + e.not_nets}
    if len(families) > 1:
        raise ctx.error("rule contains both IPv4 and IPv6 CIDRs", field)
    if http is not None:
        if action != "Allow":
            raise ctx.error("HTTP match is only valid on Allow rules", f"{field}.http")
        if proto not in (None, "TCP", 6):
            raise ctx.error("rules with HTTP match must have protocol TCP or unset",
                            f"{field}.http")
    return Rule(action=action, index=index, protocol=proto, not_protocol=not_proto, icmp=icmp,
                not_icmp=not_icmp, ip_version=ipv, source=src, destination=dst, http=http)


def _rules(ctx: _Ctx, value, field: str) -> tuple[Rule, ...]:
    return tuple(_rule(ctx, r, f"{field}[{i}]", i)
                 for i, r in enumerate(_list(ctx, value, field)))


# --------------------------------------------------------------------------- objects

def _meta(ctx: _Ctx, obj: dict) -> tuple[str, str | None, dict, dict]:
    meta = _mapping(ctx, obj.get("metadata"), "metadata")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ctx.error("missing metadata.name", "metadata.name")
    ns = meta.get("namespace")
    if ns is not None and not isinstance(ns, str):
        raise ctx.error(f"invalid namespace {_show(ns)}", "metadata.namespace")
    labels = dict(_mapping(ctx, meta.get("labels"), "metadata.labels"))
    annotations = _mapping(ctx, meta.get("annotations"), "metadata.annotations")
    # Calico >= 3.28 may keep the v3 labels of stored objects in an annotation.
    blob = annotations.get(METADATA_ANNOTATION)
    if isinstance(blob, str) and blob.strip():
        try:
            extra = json.loads(blob)
        except ValueError:
            raise ctx.error(f"annotation {METADATA_ANNOTATION} is not valid JSON",
                            "metadata.annotations") from None
        if isinstance(extra, dict) and isinstance(extra.get("labels"), dict):
            labels.update(extra["labels"])
    return name, ns or None, {str(k): str(v) for k, v in labels.items()}, annotations


def _source(item: Loaded, kind: str, ns: str | None, name: str) -> SourceRef:
    return SourceRef(api_version=str(item.obj.get("apiVersion") or ""), kind=kind,
                     namespace=ns, name=name, file=item.file, line=item.line)


def _split_tier(name: str, spec_tier: str | None, v1: bool, known_tiers: set[str]):
    """(tier, name without tier prefix). v1 storage names are '<tier>.<name>'."""
    if spec_tier:
        if name.startswith(spec_tier + "."):
            name = name[len(spec_tier) + 1:]
        return spec_tier, name
    prefix, dot, rest = name.partition(".")
    if dot and rest and (prefix == "default" or (v1 and prefix in known_tiers)):
        return prefix, rest
    return "default", name


def _types(ctx: _Ctx, spec: dict, ingress: tuple, egress: tuple) -> tuple[str, ...]:
    raw = spec.get("types")
    if raw is None or raw == []:
        if ctx.v1:
            # A raw v1 object is read by Felix as is: no types means both directions.
            return ("Ingress", "Egress")
        # The v3 API defaults types from the rules present (see the Types field docs).
        if egress and not ingress:
            return ("Egress",)
        return ("Ingress", "Egress") if egress else ("Ingress",)
    seen = []
    for i, t in enumerate(_list(ctx, raw, "spec.types")):
        norm = None
        if isinstance(t, str):
            norm = t if t in ("Ingress", "Egress") else (
                t.capitalize() if ctx.v1 and t.lower() in ("ingress", "egress") else None)
        if norm is None:
            raise ctx.error(f"invalid policy type {_show(t)}: must be Ingress or Egress",
                            f"spec.types[{i}]")
        if norm not in seen:
            seen.append(norm)
    return tuple(t for t in ("Ingress", "Egress") if t in seen)


def _policy(item: Loaded, ctx: _Ctx, kind: str, known_tiers: set[str],
            extra_fields: frozenset = frozenset()) -> Policy:
    obj = item.obj
    name, ns, _, _ = _meta(ctx, obj)
    spec = _mapping(ctx, obj.get("spec"), "spec")
    _check_fields(ctx, spec, POLICY_FIELDS | extra_fields, "spec")
    is_global = kind == "GlobalNetworkPolicy"
    if is_global:
        ns = None
    elif ns is None:
        ns = "default"   # what kubectl/calicoctl apply would use without a context namespace
    spec_tier = spec.get("tier")
    if spec_tier is not None:
        spec_tier = _str(ctx, spec_tier, "spec.tier") or None
    if not (GNP_NAME if is_global else NP_NAME).match(name) or len(name) > 253:
        raise ctx.error(f"invalid name {_show(name)}: lower case alphanumerics and '-', with at "
                        "most one '.' (after a tier name)", "metadata.name")
    tier, short = _split_tier(name, spec_tier, ctx.v1, known_tiers)
    ingress = _rules(ctx, spec.get("ingress"), "spec.ingress")
    egress = _rules(ctx, spec.get("egress"), "spec.egress")
    for r in egress:
        f = f"spec.egress[{r.index}]"
        if r.source.services is not None:
            raise ctx.error("services are not allowed in an egress rule source",
                            f"{f}.source.services")
        if r.http is not None:
            raise ctx.error("HTTP match is not allowed in egress rules", f"{f}.http")
        if is_global and r.destination.services is not None \
                and not r.destination.services.namespace:
            raise ctx.error("services in a GlobalNetworkPolicy must specify a namespace",
                            f"{f}.destination.services.namespace")
    for r in ingress:
        f = f"spec.ingress[{r.index}]"
        if r.destination.services is not None:
            raise ctx.error("services are not allowed in an ingress rule destination",
                            f"{f}.destination.services")
        if is_global and r.source.services is not None and not r.source.services.namespace:
            raise ctx.error("services in a GlobalNetworkPolicy must specify a namespace",
                            f"{f}.source.services.namespace")
    for key in ("selector", "namespaceSelector", "serviceAccountSelector"):
        text = spec.get(key)
        if isinstance(text, str) and "global(" in text:
            raise ctx.error("global() can only be used in an EntityRule namespaceSelector",
                            f"spec.{key}")
    types = _types(ctx, spec, ingress, egress)
    ns_sel = _selector(ctx, spec.get("namespaceSelector"), "spec.namespaceSelector")
    if ns_sel is not None and not is_global:
        raise ctx.error("namespaceSelector is only valid in a GlobalNetworkPolicy",
                        "spec.namespaceSelector")
    dnt = _bool(ctx, spec.get("doNotTrack"), "spec.doNotTrack")
    pre = _bool(ctx, spec.get("preDNAT"), "spec.preDNAT")
    fwd = _bool(ctx, spec.get("applyOnForward"), "spec.applyOnForward")
    if dnt and pre:
        raise ctx.error("preDNAT and doNotTrack cannot both be true", "spec")
    if (dnt or pre) and not fwd:
        raise ctx.error("applyOnForward must be true if either preDNAT or doNotTrack is true",
                        "spec.applyOnForward")
    if pre and (egress or "Egress" in types and spec.get("types")):
        raise ctx.error("a preDNAT policy cannot have egress rules or the Egress type", "spec")
    if (dnt or pre or fwd) and not is_global:
        raise ctx.error("doNotTrack, preDNAT and applyOnForward are only valid in a "
                        "GlobalNetworkPolicy", "spec")
    return Policy(
        # v1 storage names lose their tier prefix; a v3 name is kept as the user wrote it
        source=_source(item, kind, ns, short if ctx.v1 else name),
        name=short, namespace=ns, tier=tier,
        order=_order(ctx, spec.get("order"), "spec.order"),
        selector=_selector(ctx, spec.get("selector"), "spec.selector") or "all()",
        namespace_selector=ns_sel,
        service_account_selector=_selector(ctx, spec.get("serviceAccountSelector"),
                                           "spec.serviceAccountSelector"),
        types=types, ingress=ingress, egress=egress,
        do_not_track=dnt, pre_dnat=pre, apply_on_forward=fwd,
    )


def _tier(item: Loaded, ctx: _Ctx) -> Tier:
    name, _, _, _ = _meta(ctx, item.obj)
    if not TIER_NAME.match(name) or len(name) > 63:
        raise ctx.error(f"invalid tier name {_show(name)}: lower case alphanumerics and '-' "
                        "(no dots)", "metadata.name")
    spec = _mapping(ctx, item.obj.get("spec"), "spec")
    _check_fields(ctx, spec, {"order", "defaultAction"}, "spec")
    action = spec.get("defaultAction") or "Deny"
    if action not in ("Deny", "Pass"):
        if ctx.v1 and isinstance(action, str) and action.capitalize() in ("Deny", "Pass"):
            action = action.capitalize()
        else:
            raise ctx.error(f"invalid defaultAction {_show(action)}: must be Deny or Pass",
                            "spec.defaultAction")
    return Tier(name=name, order=_order(ctx, spec.get("order"), "spec.order"),
                default_action=action, source=_source(item, "Tier", None, name))


def _network_set(item: Loaded, ctx: _Ctx, kind: str) -> NetworkSet:
    name, ns, labels, _ = _meta(ctx, item.obj)
    spec = _mapping(ctx, item.obj.get("spec"), "spec")
    _check_fields(ctx, spec, {"nets", "allowedEgressDomains"}, "spec")
    if kind == "GlobalNetworkSet":
        ns = None
    elif ns is None:
        ns = "default"
    if "projectcalico.org/namespace" in labels:
        raise ctx.error("projectcalico.org/namespace is not a valid label name",
                        "metadata.labels")
    domains = tuple(_str(ctx, d, f"spec.allowedEgressDomains[{i}]") for i, d in enumerate(
        _list(ctx, spec.get("allowedEgressDomains"), "spec.allowedEgressDomains")))
    return NetworkSet(source=_source(item, kind, ns, name), name=name, namespace=ns,
                      labels=labels, nets=_nets(ctx, spec.get("nets"), "spec.nets"),
                      allowed_egress_domains=domains)


def _host_endpoint(item: Loaded, ctx: _Ctx) -> HostEndpoint:
    name, _, labels, _ = _meta(ctx, item.obj)
    spec = _mapping(ctx, item.obj.get("spec"), "spec")
    _check_fields(ctx, spec, {"node", "interfaceName", "expectedIPs", "profiles", "ports"},
                  "spec")
    node = spec.get("node")
    iface = spec.get("interfaceName")
    ips = []
    for i, ip in enumerate(_list(ctx, spec.get("expectedIPs"), "spec.expectedIPs")):
        try:
            ips.append(str(ipaddress.ip_address(str(ip).strip())))
        except ValueError:
            raise ctx.error(f"invalid IP address {_show(ip)}", f"spec.expectedIPs[{i}]") from None
    if not iface and not ips:
        raise ctx.error("a host endpoint needs interfaceName or expectedIPs", "spec")
    profiles = tuple(_str(ctx, p, f"spec.profiles[{i}]")
                     for i, p in enumerate(_list(ctx, spec.get("profiles"), "spec.profiles")))
    for i, p in enumerate(_list(ctx, spec.get("ports"), "spec.ports")):
        f = f"spec.ports[{i}]"
        pr = _mapping(ctx, p, f)
        _port(ctx, pr.get("name"), f"{f}.name")
        _port(ctx, pr.get("port"), f"{f}.port")
        _protocol(ctx, pr.get("protocol"), f"{f}.protocol")
    return HostEndpoint(source=_source(item, "HostEndpoint", None, name), name=name,
                        node=_str(ctx, node, "spec.node") if node is not None else None,
                        interface_name=_str(ctx, iface, "spec.interfaceName") if iface else None,
                        expected_ips=tuple(ips), labels=labels, profiles=profiles)


# --------------------------------------------------------------------------- Kubernetes NP

ORCHESTRATOR_SELECTOR = "projectcalico.org/orchestrator == 'k8s'"


def _q(v: str) -> str:
    return f'"{v}"' if "'" in v else f"'{v}'"


def k8s_selector_to_calico(ctx: _Ctx, sel, field: str, *, pods: bool) -> str:
    """LabelSelector -> Calico selector text, as libcalico-go's k8sSelectorToCalico."""
    parts = [ORCHESTRATOR_SELECTOR] if pods else []
    if sel is None:
        return " && ".join(parts)
    raw = _mapping(ctx, sel, field)
    _check_fields(ctx, raw, {"matchLabels", "matchExpressions"}, field)
    labels = _mapping(ctx, raw.get("matchLabels"), f"{field}.matchLabels")
    exprs = _list(ctx, raw.get("matchExpressions"), f"{field}.matchExpressions")
    if not pods and not labels and not exprs:
        return "all()"   # an empty namespaceSelector selects every namespace
    for k in sorted(labels):
        parts.append(f"{k} == {_q(str(labels[k]))}")
    for i, e in enumerate(exprs):
        f = f"{field}.matchExpressions[{i}]"
        e = _mapping(ctx, e, f)
        key, op = e.get("key"), e.get("operator")
        values = [str(v) for v in _list(ctx, e.get("values"), f"{f}.values")]
        if not isinstance(key, str) or not key:
            raise ctx.error("matchExpressions entry needs a key", f)
        if op in ("In", "NotIn"):
            if not values:
                raise ctx.error(f"operator {op} needs at least one value", f"{f}.values")
            word = "in" if op == "In" else "not in"
            parts.append(f"{key} {word} {{{', '.join(_q(v) for v in values)}}}")
        elif op in ("Exists", "DoesNotExist"):
            if values:
                raise ctx.error(f"operator {op} takes no values", f"{f}.values")
            parts.append(f"has({key})" if op == "Exists" else f"!has({key})")
        else:
            raise ctx.error(f"invalid operator {_show(op)}: "
                            "must be In, NotIn, Exists or DoesNotExist",
                            f"{f}.operator")
    text = " && ".join(parts)
    try:
        parse_selector(text)
    except SelectorError as e:
        raise ctx.error(f"label selector cannot be expressed: {e.describe()}", field) from None
    return text if text else "all()"


def _simplify_ports(ports: list[PortRange]) -> tuple[PortRange, ...]:
    """libcalico-go SimplifyPorts: named ports first, then numbers merged into ranges."""
    if len(ports) <= 1:
        return tuple(ports)
    named = [p for p in ports if p.is_named]
    spans = sorted((p.first, p.last) for p in ports if not p.is_named)
    if len(spans) <= 1 and sum(b - a for a, b in spans) == 0:
        return tuple(ports)
    merged: list[list[int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return tuple(named) + tuple(PortRange(a, b) for a, b in merged)


def _k8s_port_groups(ctx: _Ctx, ports: list, field: str) -> list[tuple[str | None, tuple]]:
    """[(protocol, ports)] sorted by protocol as kube-controllers do; [(None, ())] = any."""
    if not ports:
        return [(None, ())]
    groups: dict[str, list[PortRange] | None] = {}
    for i, p in enumerate(ports):
        f = f"{field}[{i}]"
        p = _mapping(ctx, p, f)
        _check_fields(ctx, p, {"protocol", "port", "endPort"}, f)
        proto = p.get("protocol") or "TCP"
        if proto not in ("TCP", "UDP", "SCTP"):
            raise ctx.error(f"invalid protocol {_show(proto)}: must be TCP, UDP or SCTP",
                            f"{f}.protocol")
        if p.get("port") is None:
            if p.get("endPort") is not None:
                raise ctx.error("endPort needs port", f"{f}.endPort")
            groups[proto] = None      # the protocol listed without a port: every port
            continue
        pr = _port(ctx, p["port"], f"{f}.port")
        end = p.get("endPort")
        if end is not None:
            if pr.is_named or isinstance(end, bool) or not isinstance(end, int) \
                    or not pr.first <= end <= 65535:
                raise ctx.error(f"invalid endPort {_show(end)}: needs a numeric port <= endPort",
                                f"{f}.endPort")
            pr = PortRange(pr.first, end)
        if proto not in groups:
            groups[proto] = [pr]
        elif groups[proto] is not None:
            groups[proto].append(pr)
    return [(proto, _simplify_ports(groups[proto]) if groups[proto] is not None else ())
            for proto in sorted(groups)]


def _k8s_peer(ctx: _Ctx, peer, field: str) -> EntityRule:
    raw = _mapping(ctx, peer, field)
    _check_fields(ctx, raw, {"podSelector", "namespaceSelector", "ipBlock"}, field)
    if raw.get("ipBlock") is not None:
        if raw.get("podSelector") is not None or raw.get("namespaceSelector") is not None:
            raise ctx.error("ipBlock cannot be combined with podSelector/namespaceSelector", field)
        ib = _mapping(ctx, raw["ipBlock"], f"{field}.ipBlock")
        _check_fields(ctx, ib, {"cidr", "except"}, f"{field}.ipBlock")
        if not ib.get("cidr"):
            raise ctx.error("ipBlock needs cidr", f"{field}.ipBlock.cidr")
        return EntityRule(nets=_nets(ctx, [ib["cidr"]], f"{field}.ipBlock.cidr"),
                          not_nets=_nets(ctx, ib.get("except"), f"{field}.ipBlock.except"))
    if raw.get("podSelector") is None and raw.get("namespaceSelector") is None:
        raise ctx.error("a peer needs podSelector, namespaceSelector or ipBlock", field)
    sel = k8s_selector_to_calico(ctx, raw.get("podSelector"), f"{field}.podSelector", pods=True)
    ns_sel = None
    if raw.get("namespaceSelector") is not None:
        ns_sel = k8s_selector_to_calico(ctx, raw["namespaceSelector"],
                                        f"{field}.namespaceSelector", pods=False)
    return EntityRule(selector=sel, namespace_selector=ns_sel)


def _k8s_rules(ctx: _Ctx, rules: list, field: str, ingress: bool) -> tuple[Rule, ...]:
    out: list[Rule] = []
    peer_key = "from" if ingress else "to"
    for i, r in enumerate(rules):
        f = f"{field}[{i}]"
        r = _mapping(ctx, r, f)
        _check_fields(ctx, r, {peer_key, "ports"}, f)
        groups = _k8s_port_groups(ctx, _list(ctx, r.get("ports"), f"{f}.ports"), f"{f}.ports")
        peers = [_k8s_peer(ctx, p, f"{f}.{peer_key}[{j}]")
                 for j, p in enumerate(_list(ctx, r.get(peer_key), f"{f}.{peer_key}"))] \
            or [EntityRule()]
        for proto, ports in groups:      # one rule per protocol and peer, protocol outer
            for peer in peers:
                ports_ent = EntityRule(ports=ports)
                if ingress:
                    src, dst = peer, ports_ent
                else:
                    src = EntityRule()
                    dst = replace(peer, ports=ports)
                out.append(Rule(action="Allow", index=len(out), protocol=proto,
                                source=src, destination=dst))
    return tuple(out)


def _k8s_policy(item: Loaded, ctx: _Ctx) -> Policy:
    obj = item.obj
    name, ns, _, _ = _meta(ctx, obj)
    ns = ns or "default"
    spec = _mapping(ctx, obj.get("spec"), "spec")
    _check_fields(ctx, spec, {"podSelector", "ingress", "egress", "policyTypes"}, "spec")
    ing_raw = _list(ctx, spec.get("ingress"), "spec.ingress")
    egr_raw = _list(ctx, spec.get("egress"), "spec.egress")
    types_raw = _list(ctx, spec.get("policyTypes"), "spec.policyTypes")
    for i, t in enumerate(types_raw):
        if t not in ("Ingress", "Egress"):
            raise ctx.error(f"invalid policy type {_show(t)}: must be Ingress or Egress",
                            f"spec.policyTypes[{i}]")
    if types_raw:
        types = tuple(t for t in ("Ingress", "Egress") if t in types_raw)
    else:
        # Kubernetes default: Ingress always, Egress when egress rules are present.
        types = ("Ingress", "Egress") if egr_raw else ("Ingress",)
    selector = k8s_selector_to_calico(ctx, spec.get("podSelector") or {}, "spec.podSelector",
                                      pods=True)
    return Policy(
        source=_source(item, "KubernetesNetworkPolicy", ns, name),
        name=f"knp.default.{name}", namespace=ns, tier="default", order=1000,
        selector=selector, types=types,
        ingress=_k8s_rules(ctx, ing_raw, "spec.ingress", True) if "Ingress" in types else (),
        egress=_k8s_rules(ctx, egr_raw, "spec.egress", False) if "Egress" in types else (),
    )


# --------------------------------------------------------------------------- entry point

def _skip(ps: PolicySet, item: Loaded, reason: str) -> None:
    obj = item.obj
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    kind = obj.get("kind")
    name = meta.get("name") if isinstance(meta.get("name"), str) else Path(item.file).name
    ns = meta.get("namespace") if isinstance(meta.get("namespace"), str) else None
    ps.skipped.append(Skipped(_source(item, str(kind) if kind else "(no kind)", ns, name),
                              reason))


def read_policies(loaded: list[Loaded], *, strict: bool = False) -> PolicySet:
    """Normalise every policy-related object; skip the rest with a reason.

    strict=True (a policy file given to `translate`): an object of an unknown kind is an error
    instead of a Skipped entry.
    """
    ps = PolicySet()
    for item in loaded:  # kinds, apiVersions and names are used as keys below: strings only
        o = item.obj
        meta = o.get("metadata")
        for what, value in (("kind", o.get("kind")), ("apiVersion", o.get("apiVersion")),
                            ("metadata.name", meta.get("name") if isinstance(meta, dict) else None),
                            ("metadata.namespace",
                             meta.get("namespace") if isinstance(meta, dict) else None)):
            if value is not None and not isinstance(value, str):
                raise UserError(f"{what} must be a string, not {type(value).__name__}",
                                file=item.where, field=what)
    known_tiers = set()
    for item in loaded:
        o = item.obj
        if o.get("kind") == "Tier" and isinstance(o.get("metadata"), dict):
            known_tiers.add(o["metadata"].get("name"))
    seen: dict[tuple, object] = {}

    def add(key: tuple, value, lst: list, ctx: _Ctx) -> None:
        prev = seen.get(key)
        if prev is not None:
            if replace(value, source=prev.source) == prev:
                return   # the same object exported twice (e.g. in two files)
            raise ctx.error(f"{key[0]} {'/'.join(k for k in key[1:] if k)} is defined twice "
                            f"with different content (also in {_where(prev)})")
        seen[key] = value
        lst.append(value)

    for item in loaded:
        obj = item.obj
        kind = obj.get("kind")
        api = obj.get("apiVersion")
        if not kind:
            reason = "not a Kubernetes object (no kind)"
            if any(k in obj for k in ("GlobalNetworkPolicies", "NetworkPolicies",
                                      "globalNetworkPolicies", "networkPolicies")):
                reason = "Helm values embedding policies: out of scope (render the chart first)"
            if strict and "Helm values" not in reason:
                raise UserError(reason, file=item.where)
            _skip(ps, item, reason)
            continue
        if api in (V3, V1):
            ctx = _Ctx(item, v1=(api == V1))
            if kind in ("GlobalNetworkPolicy", "NetworkPolicy"):
                p = _policy(item, ctx, kind, known_tiers)
                add((kind, p.namespace, p.tier, p.name), p, ps.policies, ctx)
            elif kind == "Tier":
                t = _tier(item, ctx)
                add(("Tier", t.name), t, ps.tiers, ctx)
            elif kind in ("GlobalNetworkSet", "NetworkSet"):
                s = _network_set(item, ctx, kind)
                add((kind, s.namespace, s.name), s, ps.network_sets, ctx)
            elif kind == "HostEndpoint":
                h = _host_endpoint(item, ctx)
                add(("HostEndpoint", h.name), h, ps.host_endpoints, ctx)
            elif kind in STAGED:
                # Validate as what it would become, so a broken staged policy is still reported.
                base = STAGED[kind]
                if base == "KubernetesNetworkPolicy":
                    spec = dict(_mapping(ctx, obj.get("spec"), "spec"))
                    spec.pop("stagedAction", None)
                    _k8s_policy(Loaded({**obj, "spec": spec}, item.file, item.doc, item.line), ctx)
                else:
                    _policy(item, ctx, base, known_tiers, frozenset({"stagedAction"}))
                _skip(ps, item, "staged policies never enforce")
            elif kind in NOT_MODELLED:
                _skip(ps, item, NOT_MODELLED[kind])
            else:
                if strict:
                    raise ctx.error(f"kind {kind} is not a policy kind this tool reads")
                _skip(ps, item, f"{api} {kind} is not a policy object")
        elif kind == "NetworkPolicy" and api in K8S_NP_APIS:
            ctx = _Ctx(item, v1=False)
            p = _k8s_policy(item, ctx)
            key = ("KubernetesNetworkPolicy", p.namespace, p.name)
            before = len(ps.policies)
            add(key, p, ps.policies, ctx)
            if len(ps.policies) > before:
                ps.k8s_policies.append(obj)
        else:
            what = f"{api or '(no apiVersion)'} {kind}"
            if strict:
                raise UserError(f"{what} is not a Calico or Kubernetes policy object",
                                file=item.where, obj=object_name(obj))
            _skip(ps, item, f"{what} is not a policy object")
    return ps


def _where(value) -> str:
    src = getattr(value, "source", None)
    if src is None or not src.file:
        return "another document"
    return f"{src.file}:{src.line}" if src.line else src.file
