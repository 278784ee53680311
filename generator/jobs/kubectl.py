"""Small kubectl Jobs for the waves' imperative steps that the runner scripts do not cover:

- calico_fix_items: pin Calico's node address autodetection before Cilium is installed
  (catalogue 1: calico-node picking cilium_host took whole clusters down);
- restart_items: after final-values, wait until cilium-config carries the final values, then
  restart the agents and the operator (they read their configuration only at start);
- nodeconfig_gate_items: the CiliumNodeConfig exists and no node is labelled yet (a wave made
  only of objects without health checks needs a Job to block on);
- removal_items: delete the old CNI's DaemonSets and controllers (point of no return).

Each runs the pinned kubectl image (--image kubectl=...) under its own ServiceAccount with the
least RBAC its commands need, as a Pod Security "restricted" pod (shared helpers in jobs/spec).
The image must provide /bin/sh (the default bitnami/kubectl image does).
"""
from __future__ import annotations

import shlex

from ..inventory.model import Inventory
from .spec import (container_security_context, job_name, labels, meta,
                         pod_security_context, service_account, tmp_volume)
from ..plan.model import Plan
from ..plan.planner import MIGRATION_LABEL, autodetection_pinned
from ..render.model import STEP_GATE, STEP_SETUP, STEP_WORK, Item
from ..render.objects import CILIUM_NAMESPACE, NODE_CONFIG_NAME

RBAC = "rbac.authorization.k8s.io/v1"

# A wait loop must tell "not there (yet)" from "not allowed": a bare `until kubectl get ...`
# waits out the Job's deadline on a 403, and `while kubectl get ...` takes a 403 for "gone" and
# passes the gate. get_or_absent returns 1 only for NotFound (or a CRD not registered yet) and
# fails the Job on any other error.
GET_OR_ABSENT = """\
get_or_absent() {
  if out=$(kubectl "$@" 2>&1); then return 0; fi
  case "$out" in *NotFound*|*"doesn't have a resource type"*) return 1;; esac
  echo "$out" >&2; exit 2
}"""


def _rule(group: str, resources: list[str], verbs: list[str], names: list[str] | None = None):
    r: dict = {"apiGroups": [group], "resources": resources}
    if names:
        r["resourceNames"] = sorted(names)
    r["verbs"] = verbs
    return r


def _rbac(plan: Plan, kind: str, cluster_rules: list[dict],
          ns_rules: dict[str, list[dict]]) -> list[Item]:
    ns = plan.options.namespace
    sa = service_account(kind)
    subject = [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]
    objs: list[dict] = [{"apiVersion": "v1", "kind": "ServiceAccount",
                         "metadata": meta(sa, kind, ns), "automountServiceAccountToken": True}]
    if cluster_rules:
        objs.append({"apiVersion": RBAC, "kind": "ClusterRole", "metadata": meta(sa, kind),
                     "rules": cluster_rules})
        objs.append({"apiVersion": RBAC, "kind": "ClusterRoleBinding", "metadata": meta(sa, kind),
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                 "name": sa}, "subjects": subject})
    for where in sorted(ns_rules):
        objs.append({"apiVersion": RBAC, "kind": "Role", "metadata": meta(sa, kind, where),
                     "rules": ns_rules[where]})
        objs.append({"apiVersion": RBAC, "kind": "RoleBinding", "metadata": meta(sa, kind, where),
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                 "name": sa}, "subjects": subject})
    return [Item(o, STEP_SETUP, f"{o['kind'].lower()}-{sa}"
                 f"{'-' + o['metadata']['namespace'] if o['kind'] in ('Role', 'RoleBinding') else ''}.yaml")
            for o in objs]


def _job(plan: Plan, kind: str, key: str, script: str, deadline: int, step: int) -> Item:
    name = job_name(plan, kind, key)
    volume, mount = tmp_volume()
    container = {
        "name": "kubectl",
        "image": plan.options.images["kubectl"],
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/sh", "-ec", script],
        "env": [{"name": "HOME", "value": "/tmp"}],   # kubectl's discovery cache
        "resources": {"requests": {"cpu": "20m", "memory": "64Mi"},
                      "limits": {"memory": "128Mi"}},
        "securityContext": container_security_context(),
        "volumeMounts": [mount],
    }
    obj = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": meta(name, kind, plan.options.namespace),
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": deadline,
            "template": {"metadata": {"labels": labels(kind)},
                         "spec": {"serviceAccountName": service_account(kind),
                                  "restartPolicy": "Never",
                                  "securityContext": pod_security_context(),
                                  "containers": [container], "volumes": [volume]}},
        },
    }
    return Item(obj, step, f"job-{name}.yaml")


def _ref(ref: str) -> tuple[str, str]:
    ns, _, name = ref.partition("/")
    return ns, name


# ------------------------------------------------------------------------------------ jobs

def calico_fix_items(plan: Plan, inv: Inventory) -> list[Item]:
    """Runs in the setup step of cilium-install: before the Cilium release exists."""
    kind = "calico-fix"
    if autodetection_pinned(inv):
        return []   # already pinned: no needless calico-node rollout
    if inv.cni.kind == "calico-operator":
        ds_ns, ds = _ref(sorted(inv.cni.daemonsets)[0]) if inv.cni.daemonsets else (
            "calico-system", "calico-node")
        patch = '{"spec":{"calicoNetwork":{"nodeAddressAutodetectionV4":' \
                '{"kubernetes":"NodeInternalIP","firstFound":null,"interface":null,' \
                '"canReach":null,"cidrs":null,"skipInterface":null}}}}'
        script = "\n".join([
            f"kubectl patch installation.operator.tigera.io default --type merge -p {shlex.quote(patch)}",
            "sleep 20  # let the operator update the DaemonSet",
            f"kubectl -n {ds_ns} rollout status daemonset/{ds} --timeout=20m",
        ])
        cluster = [_rule("operator.tigera.io", ["installations"], ["get", "patch"], ["default"])]
        ns_rules = {ds_ns: [_rule("apps", ["daemonsets"], ["get", "list", "watch"])]}
    elif inv.cni.kind in ("calico", "canal"):
        lines, ns_rules, cluster = [], {}, []
        for ref in sorted(inv.cni.daemonsets):
            ns, name = _ref(ref)
            lines += [f"kubectl -n {ns} set env daemonset/{name} -c calico-node "
                      "IP_AUTODETECTION_METHOD=kubernetes-internal-ip",
                      f"kubectl -n {ns} rollout status daemonset/{name} --timeout=20m"]
            ns_rules.setdefault(ns, []).extend([
                _rule("apps", ["daemonsets"], ["get", "list", "watch"]),
                _rule("apps", ["daemonsets"], ["patch"], [name])])
        if not lines:
            return []
        script = "\n".join(lines)
    else:
        return []  # Flannel has no Calico to fix
    return _rbac(plan, kind, cluster, ns_rules) + [
        _job(plan, kind, "cilium-install", script, 1800, STEP_SETUP)]


def restart_items(plan: Plan) -> list[Item]:
    kind = "cilium-restart"
    ns = CILIUM_NAMESPACE
    script = "\n".join([
        "# wait until the Cilium release carries the final values (its sync is asynchronous);",
        "# a refused read fails the Job (sh -e) instead of waiting for ever",
        "while :; do",
        "  v=$(kubectl -n %s get configmap cilium-config -o jsonpath='{.data.enable-policy}')"
        % ns,
        '  [ "$v" = default ] && break',
        "  sleep 10",
        "done",
        f"kubectl -n {ns} rollout restart daemonset/cilium deployment/cilium-operator",
        f"kubectl -n {ns} rollout status deployment/cilium-operator --timeout=10m",
        f"kubectl -n {ns} rollout status daemonset/cilium --timeout=60m",
    ])
    ns_rules = {ns: [
        _rule("", ["configmaps"], ["get"], ["cilium-config"]),
        _rule("apps", ["daemonsets", "deployments"], ["get", "list", "watch"]),
        _rule("apps", ["daemonsets"], ["patch"], ["cilium"]),
        _rule("apps", ["deployments"], ["patch"], ["cilium-operator"]),
    ]}
    return _rbac(plan, kind, [], ns_rules) + [
        _job(plan, kind, "final-values", script, 3600 + 900, STEP_WORK)]


def nodeconfig_gate_items(plan: Plan) -> list[Item]:
    kind = "nodeconfig-check"
    script = "\n".join([
        GET_OR_ABSENT,
        "# the operator registers the CRD at run time; wait for our CiliumNodeConfig",
        f"until get_or_absent -n {CILIUM_NAMESPACE} get ciliumnodeconfigs.cilium.io "
        f"{NODE_CONFIG_NAME}; do sleep 10; done",
        # not `kubectl ... | wc -l`: sh has no pipefail, so a refused list would count 0 and
        # pass the gate; a failing assignment fails the Job (sh -e)
        f"labelled=$(kubectl get nodes -l {MIGRATION_LABEL}=true -o name)",
        'n=$(printf "%s" "$labelled" | grep -c . || true)',
        'if [ "$n" -ne 0 ]; then echo "$n node(s) already labelled before the node waves"; '
        "exit 1; fi",
    ])
    cluster = [_rule("", ["nodes"], ["list"])]
    ns_rules = {CILIUM_NAMESPACE: [_rule("cilium.io", ["ciliumnodeconfigs"], ["get"],
                                         [NODE_CONFIG_NAME])]}
    return _rbac(plan, kind, cluster, ns_rules) + [
        _job(plan, kind, "nodeconfig", script, 900, STEP_GATE)]


def nodeconfig_removed_gate_items(plan: Plan) -> list[Item]:
    """After the CiliumNodeConfig is pruned: it is gone and every agent is still Ready."""
    kind = "nodeconfig-removal-check"
    ns = CILIUM_NAMESPACE
    script = "\n".join([
        GET_OR_ABSENT,
        f"while get_or_absent -n {ns} get ciliumnodeconfigs.cilium.io {NODE_CONFIG_NAME}; do "
        "sleep 10; done",
        f"kubectl -n {ns} rollout status daemonset/cilium --timeout=10m",
    ])
    ns_rules = {ns: [_rule("cilium.io", ["ciliumnodeconfigs"], ["get"], [NODE_CONFIG_NAME]),
                     _rule("apps", ["daemonsets"], ["get", "list", "watch"])]}
    return _rbac(plan, kind, [], ns_rules) + [
        _job(plan, kind, "nodeconfig-removal", script, 900, STEP_GATE)]


def removal_items(plan: Plan, inv: Inventory) -> list[Item]:
    kind = "old-cni-removal"
    lines: list[str] = []
    ns_rules: dict[str, list[dict]] = {}
    cluster: list[dict] = []
    if inv.cni.kind == "calico-operator":
        # the operator removes what it installed; then the operator itself goes
        lines.append("kubectl delete installation.operator.tigera.io default --ignore-not-found "
                     "--wait --timeout=15m")
        cluster.append(_rule("operator.tigera.io", ["installations"], ["get", "delete"],
                             ["default"]))
    by_ns: dict[str, dict[str, list[str]]] = {}
    for ref in sorted(inv.cni.daemonsets):
        ns, name = _ref(ref)
        by_ns.setdefault(ns, {}).setdefault("daemonsets", []).append(name)
    for ref in sorted(inv.cni.deployments):
        ns, name = _ref(ref)
        by_ns.setdefault(ns, {}).setdefault("deployments", []).append(name)
    for ns in sorted(by_ns):
        for res in sorted(by_ns[ns]):
            names = sorted(by_ns[ns][res])
            lines.append(f"kubectl -n {ns} delete {res} {' '.join(names)} --ignore-not-found "
                         "--wait --timeout=15m")
            ns_rules.setdefault(ns, []).extend([
                _rule("apps", [res], ["get", "list", "watch"]),
                _rule("apps", [res], ["delete"], names)])
    if not lines:
        return []
    return _rbac(plan, kind, cluster, ns_rules) + [
        _job(plan, kind, "old-cni-removal", "\n".join(lines), 3600, STEP_WORK)]
