"""Cilium Helm values for the migration, per Cilium minor (1.16-1.19).

One values file, cilium/values.yaml, is rendered twice: in migration mode (wave cilium-install)
and in its final form (wave final-values). Only three lines differ between the two, so the
final-values pull request is a three-line diff:

    cni.customConf                          true  -> false
    operator.unmanagedPodWatcher.restart    false -> true
    policyEnforcementMode                   never -> default

Every key we set carries a comment saying why (the comment does not change between the two
forms). Keys come from the Cilium "Migrating a cluster to Cilium" guide (identical 1.14-1.19);
each key exists in the chart values.yaml of every supported minor (tests check 1.17.6/1.18.3).
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

from ..errors import UserError
from ..plan.model import SUPPORTED_CILIUM, Plan
from .. import yamlio

# Default chart version per minor: the newest patch of each (tests check it against the packaged
# charts, and render each with helm in tests/e2e/test_e2e_chart.py).
CHART_VERSIONS = {"1.16": "1.16.19", "1.17": "1.17.18", "1.18": "1.18.12", "1.19": "1.19.6"}

# The three keys the final-values wave flips, with their migration and final values.
FINAL_CHANGES = {
    "cni.customConf": (True, False),
    "operator.unmanagedPodWatcher.restart": (False, True),
    "policyEnforcementMode": ("never", "default"),
}

# Keys the migration owns: translation helm_values may not override them.
RESERVED_PREFIXES = ("cni.", "ipam.", "routingMode", "tunnelProtocol", "tunnelPort",
                     "policyEnforcementMode", "operator.unmanagedPodWatcher",
                     "bpf.hostLegacyRouting", "rollOutCiliumPods", "hubble.tls.auto.method")


@dataclass
class Value:
    path: str                     # dotted Helm key, e.g. "ipam.operator.clusterPoolIPv4PodCIDRList"
    value: object
    reason: str                   # why the key is set
    changes_in_final: bool = False
    keys: tuple[str, ...] = ()    # the key path; given when a key itself holds dots (annotations)

    def __post_init__(self):
        if not self.keys:
            self.keys = tuple(self.path.split("."))


@dataclass
class Values:
    cilium_version: str
    chart_version: str
    entries: list[Value]
    warnings: list[str] = field(default_factory=list)

    def get(self, path: str):
        for e in self.entries:
            if e.path == path:
                return e.value
        raise KeyError(path)

    def tree(self) -> dict:
        """The nested dict Helm sees."""
        out: dict = {}
        for e in self.entries:
            cur = out
            parts = e.keys
            for p in parts[:-1]:
                cur = cur.setdefault(p, {})
            cur[parts[-1]] = e.value
        return out


def chart_version(cilium_version: str, requested: str | None = None) -> str:
    check_version(cilium_version)
    if requested:
        if not requested.startswith(cilium_version + "."):
            raise UserError(f"chart version {requested} is not a {cilium_version}.x release",
                            field="--cilium-chart-version")
        return requested
    return CHART_VERSIONS[cilium_version]


def node_config_api_version(cilium_version: str) -> str:
    """CiliumNodeConfig is cilium.io/v2alpha1 on 1.13-1.15 and cilium.io/v2 from 1.16."""
    major, minor = (int(x) for x in cilium_version.split(".")[:2])
    return "cilium.io/v2" if (major, minor) >= (1, 16) else "cilium.io/v2alpha1"


def check_version(cilium_version: str) -> None:
    if cilium_version not in SUPPORTED_CILIUM:
        raise UserError(f"unsupported Cilium version {cilium_version!r}: choose one of "
                        f"{', '.join(SUPPORTED_CILIUM)}", field="--cilium-version")


def _base(plan: Plan) -> list[Value]:
    t = plan.tunnel
    final = {k: v for k, v in FINAL_CHANGES.items()}
    return [
        Value("routingMode", "tunnel",
              "the migration works only in tunnel mode: native routing cannot reach pods still "
              "on the old CNI's overlay"),
        Value("tunnelProtocol", t.protocol, f"{t.reason}"),
        Value("tunnelPort", t.port,
              "must differ from the old CNI's VXLAN port: two VXLAN devices on one UDP port "
              "crash the agent (Cilium's 8472 default equals Flannel's and Canal's)"),
        Value("cni.customConf", final["cni.customConf"][0],
              "migration: true, Cilium writes no CNI config until a node is switched by the "
              "CiliumNodeConfig; final-values: false, Cilium owns the CNI config on every node",
              True),
        Value("cni.uninstall", False,
              "never remove CNI configs when an agent stops: a rollback of a node must leave the "
              "old CNI's config in place"),
        Value("ipam.mode", "cluster-pool",
              "Cilium allocates pod addresses from its own pool, separate from the old CNI's"),
        Value("ipam.operator.clusterPoolIPv4PodCIDRList", [plan.cilium_pod_cidr],
              f"the new pod CIDR: {plan.cidr_reason}. Entries can later only be appended, "
              "never changed"),
        Value("ipam.operator.clusterPoolIPv4MaskSize", plan.options.cilium_pod_cidr_mask,
              "per-node block size carved from the pool"),
        Value("policyEnforcementMode", final["policyEnforcementMode"][0],
              "migration: never, Cilium enforces nothing while Calico still enforces on "
              "unswitched nodes; final-values: default, the translated policies take effect",
              True),
        Value("bpf.hostLegacyRouting", True,
              "route through the host stack so the kernel can reach the old overlay; turning it "
              "off later needs kernel >= 5.10, kube-proxy replacement and eBPF masquerading"),
        Value("operator.unmanagedPodWatcher.restart",
              final["operator.unmanagedPodWatcher.restart"][0],
              "migration: false, else the operator keeps deleting CoreDNS pods that run on "
              "unswitched nodes (no Cilium endpoint); final-values: true, the default",
              True),
        Value("rollOutCiliumPods", False,
              "a values change must not roll every agent mid-migration: agents restart only "
              "node by node, from the migration Jobs"),
        Value("hubble.tls.auto.method", "cronJob",
              "certificates minted by a CronJob in the cluster, not by 'helm template' at every "
              "render (which Argo CD would see as a diff at every sync)"),
    ]


# Why the translation asks for a key, when it does not say itself (design/migration.md).
KNOWN_REASONS = {
    "hostFirewall": "host policies (translated Calico HostEndpoint policies: clusterwide "
                    "policies with a nodeSelector) are enforced only with the host firewall",
    "nodeSelectorLabels": "policies select nodes (fromNodes/toNodes): needs "
                          "enable-node-selector-labels, set from the install so no agent and "
                          "operator restart is needed later",
    "annotations": "set by the translation to mark the node-selector-labels change on the "
                   "agent objects",
    "hubble": "Calico Log rules: Cilium has no log action, so Hubble exports the flows instead",
}


def _known_reason(keys: tuple) -> str | None:
    return KNOWN_REASONS.get(keys[0])


def _flatten(d: dict, prefix: tuple = ()) -> list[tuple[tuple, object]]:
    out = []
    for k in sorted(d):
        v = d[k]
        keys = (*prefix, str(k))
        # annotation and label maps are leaves: their keys hold dots and slashes
        if isinstance(v, dict) and v and not keys[-1].lower().endswith(("annotations", "labels")):
            out.extend(_flatten(v, keys))
        else:
            out.append((keys, v))
    return out


def migration_values(plan: Plan, helm_values: dict | None = None,
                     reasons: dict[str, str] | None = None) -> Values:
    """Migration-mode values, with the translation's helm_values merged in.

    helm_values: nested dict from the translation (hostFirewall, nodeSelectorLabels, pod
    annotations forcing a restart, hubble...). reasons: optional dotted key -> why.
    """
    version = plan.options.cilium_version
    entries = _base(plan)
    warnings: list[str] = []
    have = {e.path for e in entries}
    for keys, value in _flatten(helm_values or {}):
        path = ".".join(keys)
        if path in have or path.startswith(RESERVED_PREFIXES):
            if path in have and Values(version, "", entries).get(path) == value:
                continue
            warnings.append(f"translation asked for Helm value {path}={value!r}, which the "
                            "migration controls; kept the migration's value")
            continue
        why = ((reasons or {}).get(path) or _known_reason(keys)
               or "needed by the translated policies (see the policy report)")
        entries.append(Value(path, value, why, keys=keys))
        have.add(path)
    return Values(version, chart_version(version, plan.options.cilium_chart_version),
                  entries, warnings)


def final_values(migration: Values) -> Values:
    """The same file with the three final-values keys flipped, nothing else."""
    entries = [Value(e.path, FINAL_CHANGES[e.path][1], e.reason, True, e.keys)
               if e.path in FINAL_CHANGES else e for e in migration.entries]
    return Values(migration.cilium_version, migration.chart_version, entries,
                  list(migration.warnings))


# ----------------------------------------------------------------------------------- rendering

@dataclass
class Node:
    """One key of the values file as the template prints it."""
    key: str
    comment: list[str]
    scalar: str | None = None               # YAML text of a leaf
    items: list[list[str]] | None = None    # YAML lines of each list item
    children: list["Node"] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The key as YAML text (quoted when it needs to be)."""
        return _scalar(self.key)


def _scalar(v) -> str:
    return yamlio.dump({"k": v})[3:].rstrip("\n")


def _item_lines(v) -> list[str]:
    """A list item as YAML lines: one line for a scalar, a block for a mapping or list."""
    if isinstance(v, (dict, list)) and v:
        return yamlio.dump(v).rstrip("\n").splitlines()
    return [_scalar(v)]


def _nodes(values: Values) -> list[Node]:
    roots: list[Node] = []
    for e in values.entries:
        level = roots
        parts = e.keys
        indent = 2 * (len(parts) - 1)
        for p in parts[:-1]:
            hit = next((n for n in level if n.key == p and n.scalar is None and n.items is None), None)
            if hit is None:
                hit = Node(p, [])
                level.append(hit)
            level = hit.children
        comment = textwrap.wrap(e.reason, max(40, 98 - indent), break_on_hyphens=False)
        if isinstance(e.value, list) and e.value:
            level.append(Node(parts[-1], comment, items=[_item_lines(i) for i in e.value]))
        elif isinstance(e.value, dict) and e.value:
            # a map kept whole (annotations): one child per key, no comment on each
            node = Node(parts[-1], comment)
            node.children = [Node(k, [], scalar=_scalar(v)) for k, v in sorted(e.value.items())]
            level.append(node)
        else:
            level.append(Node(parts[-1], comment, scalar=_scalar(e.value)))
    return roots


def render_values(values: Values, *, cluster_name: str) -> str:
    from ..render.templates import env
    return env().get_template("values.yaml.j2").render(
        nodes=_nodes(values), cluster_name=cluster_name, cilium_version=values.cilium_version,
        chart_version=values.chart_version,
        final_keys=sorted(FINAL_CHANGES))
