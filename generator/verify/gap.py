"""The per-wave enforcement gap while Cilium runs with policyEnforcementMode "never".

A pod re-created on a switched node is a Cilium endpoint, not a Calico one: Calico stops
enforcing its policies, and Cilium enforces nothing until the final values. So after each node
wave, every policy that selects a pod on a switched node is not enforced for that pod (both its
ingress and its egress). Two side effects (inference from how Felix builds IP sets from its
workload endpoints): Calico rules on unswitched nodes that name migrated pods by label no longer
match them (their new addresses are unknown to Calico), and CIDR rules naming the old pod CIDR
no longer cover them.

enforcement_gap(plan, inventory, policy_set) -> list[WaveGap]; WaveGap.markdown() is the
section for that wave's PR description; safer_sequence(...) suggests an order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..calico import selector as calsel
from ..listing import some
from ..calico.model import Policy, PolicySet


MAX_ROWS = 50   # rows per Markdown table in a PR description

@dataclass
class PolicyGap:
    policy: str                      # "NetworkPolicy prod/db"
    directions: tuple[str, ...]      # ("Ingress", "Egress")
    pods: list[str]                  # "namespace/name" of unenforced pods
    nodes: list[str]                 # (both lists shared by policies with the same subject:
                                     # read them, do not change them)


@dataclass
class WaveGap:
    wave: str                        # wave key, e.g. "nodes-02"
    number: int
    new_nodes: list[str]
    switched_nodes: list[str]        # cumulative
    policies: list[PolicyGap] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)   # namespaces with unenforced pods
    unenforced_pods: int = 0
    governed_pods: int = 0           # pods any policy selects, cluster-wide

    def markdown(self) -> str:
        lines = [f"### Enforcement gap after wave {self.number:02d} ({self.wave})", ""]
        if not self.policies:
            lines.append(f"Switched nodes: {some(self.switched_nodes) or 'none'}. No policy "
                         "selects a pod on them: no enforcement is lost.")
            return "\n".join(lines) + "\n"
        lines += [
            f"Cilium runs with `policyEnforcementMode: never` until the final values, and pods "
            f"on switched nodes ({some(self.switched_nodes)}) are no longer Calico "
            f"endpoints: **{self.unenforced_pods} of {self.governed_pods}** policy-governed pods "
            f"are unprotected, in namespaces {some(self.namespaces, lambda n: f'`{n}`')}.",
            "",
            "| policy | directions | unenforced pods | on nodes |",
            "|---|---|---:|---|",
        ]
        # a PR text is read by people: the policies leaving the most pods unprotected first,
        # at most MAX_ROWS of them (a 5,000-node cluster would otherwise get 50 MB tables)
        ranked = sorted(self.policies, key=lambda g: (-len(g.pods), g.policy))
        for g in ranked[:MAX_ROWS]:
            shown = ", ".join(g.pods[:5]) + (f" (+{len(g.pods) - 5})" if len(g.pods) > 5 else "")
            nodes = ", ".join(g.nodes[:5]) + (f" (+{len(g.nodes) - 5})" if len(g.nodes) > 5 else "")
            lines.append(f"| {g.policy} | {', '.join(g.directions)} | {len(g.pods)}: {shown} "
                         f"| {nodes} |")
        if len(ranked) > MAX_ROWS:
            lines.append(f"\n{len(ranked) - MAX_ROWS} more policies not shown (fewer pods each).")
        # libcalico-go builds workload endpoints from Pod objects and, without Calico's IPAM
        # annotation, takes their addresses from status.podIPs: Calico on unswitched nodes keeps
        # matching switched pods by label at their new addresses. Only their own policy is lost.
        lines += ["", "Calico on unswitched nodes still matches these pods by label at their new "
                  "addresses (it reads them from the Pod objects), so policies of pods that are "
                  "not switched yet keep their meaning; what is lost is the switched pods' own "
                  "ingress and egress policy, listed above."]
        return "\n".join(lines) + "\n"


def _pod_labels(pod, ns_labels: dict) -> dict:
    # Calico's derived labels on a workload endpoint
    return dict(pod.labels) | {"projectcalico.org/namespace": pod.namespace,
                               "projectcalico.org/orchestrator": "k8s",
                               "projectcalico.org/serviceaccount": pod.service_account or "default"}


def selects(policy: Policy, pod, ns_labels: dict[str, dict]) -> bool:
    """Does a Calico policy's subject select this pod (namespace, selector, SA selector)?"""
    if policy.namespace is not None and pod.namespace != policy.namespace:
        return False
    try:
        if policy.namespace is None and policy.namespace_selector:
            labels = dict(ns_labels.get(pod.namespace, {})) | {
                "projectcalico.org/name": pod.namespace}
            if not calsel.parse(policy.namespace_selector).evaluate(labels):
                return False
        if not calsel.parse(policy.selector).evaluate(_pod_labels(pod, ns_labels)):
            return False
    except calsel.SelectorError:
        return False
    return True


NS_LABEL = "projectcalico.org/namespace"


def _classes(inventory) -> dict[str, dict[tuple, list]]:
    """namespace -> (labels, service account) -> [(index, pod)]: pods a subject selector cannot
    tell apart (it reads only these and the namespace), so each class is evaluated once."""
    out: dict[str, dict[tuple, list]] = {}
    for i, p in enumerate(inventory.pods):
        if p.host_network:
            continue
        key = (tuple(sorted(p.labels.items())), p.service_account or "default")
        out.setdefault(p.namespace, {}).setdefault(key, []).append((i, p))
    return out


def _select(policy: Policy, classes, ns_labels: dict[str, dict]) -> list:
    """The pods `selects` is True for, in inventory order, evaluated once per class."""
    try:
        sel = calsel.parse(policy.selector)
        nssel = (calsel.parse(policy.namespace_selector)
                 if policy.namespace is None and policy.namespace_selector else None)
    except calsel.SelectorError:
        return []
    if policy.namespace is not None:
        namespaces = [policy.namespace]
    else:
        pinned = calsel.pinned_values(sel, NS_LABEL)
        namespaces = sorted(classes if pinned is None else pinned)
    hit = []
    for ns in namespaces:
        if nssel is not None and not nssel.evaluate(
                dict(ns_labels.get(ns, {})) | {"projectcalico.org/name": ns}):
            continue
        for (labels, sa), members in classes.get(ns, {}).items():
            if sel.evaluate(dict(labels) | {NS_LABEL: ns, "projectcalico.org/orchestrator": "k8s",
                                            "projectcalico.org/serviceaccount": sa}):
                hit.extend(members)
    hit.sort(key=lambda ip: ip[0])
    return [p for _, p in hit]


def _governing(policy_set: PolicySet, inventory) -> dict[str, tuple[Policy, list]]:
    """Policy -> the pods it selects. Policies with the same subject share one list object
    (enforcement_gap relies on that to filter each distinct list once per wave)."""
    ns_labels = {n.name: dict(n.labels) for n in inventory.namespaces}
    classes = _classes(inventory)
    cache: dict[tuple, list] = {}
    out: dict[str, tuple[Policy, list]] = {}
    for pol in policy_set.policies:
        key = (pol.namespace, pol.namespace_selector if pol.namespace is None else None,
               pol.selector)
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = _select(pol, classes, ns_labels)
        if hit:
            out[pol.source.describe()] = (pol, hit)
    return out


def enforcement_gap(plan, inventory, policy_set: PolicySet) -> list[WaveGap]:
    """One WaveGap per wave that switches nodes, cumulative over the waves before it."""
    governing = _governing(policy_set, inventory)
    # each distinct pod list once: at size L, 2,000 policies share one list of 10,000 pods
    distinct = {id(pods): pods for _, pods in governing.values()}
    governed = {(p.namespace, p.name) for pods in distinct.values() for p in pods}
    names = sorted(governing)
    switched: list[str] = []
    on: set[str] = set()
    out: list[WaveGap] = []
    for wave in plan.waves:
        if not wave.nodes:
            continue
        switched = switched + [n for n in wave.nodes if n not in on]   # not `in switched`
        on = set(switched)
        gap = WaveGap(wave.key, wave.number, list(wave.nodes), list(switched))
        lost = set()
        seen: dict[int, tuple] = {}   # id(pod list) -> (pod names, nodes): shared lists once
        for name in names:
            pol, pods = governing[name]
            got = seen.get(id(pods))
            if got is None:
                here = [p for p in pods if p.node in on]
                lost.update((p.namespace, p.name) for p in here)
                got = seen[id(pods)] = (sorted(f"{p.namespace}/{p.name}" for p in here),
                                        sorted({p.node for p in here}))
            if not got[0]:
                continue
            # the lists are shared by the policies with the same subject (not copied per policy)
            gap.policies.append(PolicyGap(name, tuple(pol.types), got[0], got[1]))
        gap.unenforced_pods = len(lost)
        gap.governed_pods = len(governed)
        gap.namespaces = sorted({ns for ns, _ in lost})
        out.append(gap)
    return out


def gap_markdown(plan, inventory, policy_set: PolicySet, wave_key: str) -> str:
    """The gap section for one wave's PR description ("" for waves that switch no node)."""
    for g in enforcement_gap(plan, inventory, policy_set):
        if g.wave == wave_key:
            return g.markdown()
    return ""


def node_exposure(inventory, policy_set: PolicySet) -> dict[str, dict]:
    """Per node: policy-governed pods and the namespaces they are in."""
    governing = _governing(policy_set, inventory)
    out: dict[str, dict] = {n.name: {"pods": set(), "namespaces": set()} for n in inventory.nodes}
    for _, pods in governing.values():
        for p in pods:
            if p.node in out:
                out[p.node]["pods"].add((p.namespace, p.name))
                out[p.node]["namespaces"].add(p.namespace)
    return out


def safer_sequence(plan, inventory, policy_set: PolicySet) -> str:
    """Markdown: a node order that keeps the gap small, and the audit-first sequence."""
    exp = node_exposure(inventory, policy_set)
    planned = [n for w in plan.waves for n in w.nodes]
    # fewest governed pods first; ties keep namespaces together (nodes sharing namespaces adjacent)
    order = sorted(planned, key=lambda n: (len(exp.get(n, {}).get("pods", ())),
                                           sorted(exp.get(n, {}).get("namespaces", ())), n))
    lines = ["### Safer sequence", "",
             "| # | node | policy-governed pods | namespaces |", "|---:|---|---:|---|"]
    for i, n in enumerate(order[:MAX_ROWS], 1):
        e = exp.get(n, {"pods": set(), "namespaces": set()})
        ns = sorted(e["namespaces"])
        shown = ", ".join(ns[:8]) + (f" (+{len(ns) - 8})" if len(ns) > 8 else "")
        lines.append(f"| {i} | {n} | {len(e['pods'])} | {shown or '-'} |")
    if len(order) > MAX_ROWS:
        lines.append(f"\n... {len(order) - MAX_ROWS} more nodes, in the same order.")
    lines += [
        "",
        "1. Switch the nodes with the fewest policy-governed pods first (order above); move the "
        "pods of one sensitive namespace in as few waves as possible (cordon its other nodes).",
        "2. Apply the translated Cilium policies before the first node wave and run the "
        "`verify` probes in audit mode: set `policy-audit-mode: \"true\"` and "
        "`enable-policy: default` in the CiliumNodeConfig of switched nodes, so Cilium "
        "computes verdicts and Hubble shows would-be drops without dropping.",
        "3. Once the audit shows no unexpected drops, switch those nodes to enforcement "
        "(`policy-audit-mode: \"false\"`) wave by wave instead of waiting for the final values; "
        "pods still on Calico are `unmanaged` to Cilium, so keep an allow for the old pod CIDR "
        "until the last node is switched.",
        "4. Keep a temporary Calico allow for the Cilium pod CIDR (a bridge policy) so Calico "
        "pods keep accepting traffic from migrated pods.",
    ]
    return "\n".join(lines) + "\n"


def wave_sections(plan, inventory, policy_set: PolicySet) -> dict[str, str]:
    """{wave key: Markdown} for every wave that switches nodes (one pass over the policies);
    the first such wave also carries the safer-sequence suggestion."""
    out: dict[str, str] = {}
    for i, g in enumerate(enforcement_gap(plan, inventory, policy_set)):
        text = g.markdown()
        if i == 0 and g.governed_pods:
            text += "\n" + safer_sequence(plan, inventory, policy_set)
        out[g.wave] = text
    return out
