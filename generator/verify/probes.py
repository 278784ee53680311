"""Policy probes: real connections that check the verdicts Felix predicts, in the cluster.

Flows are picked from the source policies over the inventory's real identities: for every
deciding rule (as Felix names it) one flow it decides, plus the flows just outside it (other
port, other client labels, other client namespace), each with Felix's expected verdict.

probe_items(policy_set, inventory, plan, phase) returns the Items of one probe run:
- a ConfigMap with the matrix, the probe pod manifests and the check script;
- a ServiceAccount, and per probed namespace a Role + RoleBinding with exactly the verbs the
  script uses (no wildcards);
- a Job (kubectl image) that creates the probe pods, runs `agnhost connect` from each client
  probe to each server probe through `kubectl exec`, prints JSON and JUnit, exits 1 on any
  mismatch, and deletes its pods.

Probe pods carry the labels, namespace and service account of the endpoints they stand for,
run agnhost netexec (one container per probed port) under the "restricted" Pod Security
profile, and have a readiness probe that never succeeds so that no Service sends them traffic.
They are owned (controller reference) by a per-namespace ConfigMap the Job creates: no
ReplicaSet or DaemonSet can adopt them, and deleting the ConfigMap garbage-collects them.
Labels that would let a controller claim them (pod-template-hash, controller-revision-hash...)
are dropped. Only TCP is probed: agnhost connect has no UDP verdict.

phase "baseline" runs in the preflight wave under Calico; "enforced" after the final values.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from ..calico.model import PolicySet
from ..jobs import spec as jobspec
from ..render.model import STEP_GATE, STEP_SETUP, Item
from .compare import felix_model
from .model import Endpoint, Flow
from .universe import inventory_universe

PHASES = ("baseline", "enforced")
MAX_PROBES = 60
MAX_PODS = 40
MAX_CANDIDATES = 40            # endpoints considered when picking probe flows
CONNECT_TIMEOUT = "3s"
DROP_LABELS = ("pod-template-hash", "controller-revision-hash", "pod-template-generation",
               "statefulset.kubernetes.io/pod-name", "controller-uid", "batch.kubernetes.io/controller-uid",
               "apps.kubernetes.io/pod-index", "batch.kubernetes.io/job-completion-index")
PROBE_LABEL = "cni-migrate.io/probe"


@dataclass(frozen=True)
class Probe:
    id: str                      # "p01"
    client: Endpoint
    server: Endpoint
    port: int
    expected: str                # "allow" | "deny"
    decided_by: str              # Felix's deciding rule
    why: str                     # "decided by the rule" | "other port" | "other labels" | ...

    def flow(self) -> Flow:
        return Flow(self.client, self.server, "TCP", self.port)


def _ident(ep: Endpoint) -> tuple:
    return (ep.namespace, ep.labels, ep.service_account)


def _governs(fx):
    """(endpoint, direction) -> does a policy govern it, from a Felix model (None: cannot
    tell). FelixModel.governs answers without building the endpoint's chain."""
    if hasattr(fx, "governs"):
        return fx.governs
    chain = getattr(fx, "chain", None)
    if chain is None:
        return None
    return lambda e, direction: bool(chain(e, direction)[0])


def pick_probes(policy_set: PolicySet, inventory, felix=None, limit: int = MAX_PROBES
                ) -> list[Probe]:
    """For each deciding rule, one flow it decides and the flows just outside it."""
    uni = inventory_universe(inventory, policy_set, [])
    fx = felix or felix_model(policy_set)
    pods = [e for e in uni.endpoints if e.kind == "pod" and e.ip]
    governs = _governs(fx)
    if governs is not None and len(pods) > MAX_CANDIDATES:
        # keep the first pods some policy governs (they carry the verdicts), then the first
        # few others; the scan stops once it has both
        governed: list[Endpoint] = []
        others: list[Endpoint] = []
        for e in pods:
            if governs(e, "ingress") or governs(e, "egress"):
                governed.append(e)
            else:
                others.append(e)
            if len(governed) >= MAX_CANDIDATES - 8 and len(others) >= 8:
                break
        pods = governed[:MAX_CANDIDATES - 8] + others[:8]
    ports = sorted({l4.port for l4 in uni.l4 if l4.protocol == "TCP" and l4.port})
    verdicts: dict[tuple, object] = {}

    def judge(c, s, port):
        key = (_ident(c), _ident(s), port)
        if key not in verdicts:
            verdicts[key] = fx.verdict(Flow(c, s, "TCP", port))
        return verdicts[key]

    first: dict[str, tuple] = {}      # decided_by -> (client, server, port)
    for s in pods:
        for c in pods:
            if c is s:
                continue
            for port in ports:
                v = judge(c, s, port)
                first.setdefault(v.decided_by, (c, s, port))
    out: list[Probe] = []
    seen: set = set()

    def add(c, s, port, why):
        key = (_ident(c), _ident(s), port)
        if key in seen or len(out) >= limit:
            return
        seen.add(key)
        v = judge(c, s, port)
        out.append(Probe(f"p{len(out) + 1:02d}", c, s, port, "allow" if v.allowed else "deny",
                         v.decided_by, why))

    for decided_by in sorted(first):
        c, s, port = first[decided_by]
        add(c, s, port, "decided by the rule")
        i = ports.index(port)
        for other in (ports[i - 1] if i else None, ports[i + 1] if i + 1 < len(ports) else None):
            if other is not None:
                add(c, s, other, "other port")
        same_ns = [e for e in pods if e.namespace == c.namespace and e is not c and e is not s]
        if same_ns:
            add(same_ns[0], s, port, "other client labels")
        other_ns = [e for e in pods if e.namespace != c.namespace and e is not s]
        if other_ns:
            add(other_ns[0], s, port, "other client namespace")
    return out


def probe_matrix_markdown(probes: list[Probe]) -> str:
    """The probe matrix, readable in a PR description."""
    if not probes:
        return "No probe flows: no pod is governed by a policy.\n"
    lines = ["| probe | client | server | port | expected | why | deciding rule (Calico) |",
             "|---|---|---|---:|---|---|---|"]
    for p in probes:
        lines.append(f"| {p.id} | {_md(p.client.name)} | {_md(p.server.name)} | TCP/{p.port} | "
                     f"**{p.expected}** | {p.why} | {_md(p.decided_by)} |")
    return "\n".join(lines) + "\n"


def _md(s: str) -> str:
    return str(s).replace("|", "\\|")


# --------------------------------------------------------------------------- objects

def _pod_name(phase: str, ep: Endpoint) -> str:
    h = hashlib.sha256(repr(_ident(ep)).encode()).hexdigest()[:8]
    return f"cni-migrate-probe-{phase}-{h}"


def _owner_name(phase: str) -> str:
    return f"cni-migrate-probe-owner-{phase}"


def probe_pod(plan, phase: str, ep: Endpoint, ports: list[int]) -> dict:
    labels = {k: v for k, v in ep.labels if k not in DROP_LABELS}
    labels[PROBE_LABEL] = phase
    never_port = next(p for p in range(65001, 65535) if p not in ports)
    serve = ports or [never_port - 1]
    containers = []
    for i, port in enumerate(serve):
        containers.append({
            "name": f"probe-{port}",
            "image": plan.options.images["probe"],
            "imagePullPolicy": "IfNotPresent",
            "args": ["netexec", f"--http-port={port}", f"--udp-port={port}"],
            # never Ready: no Service that selects these labels sends traffic to a probe
            "readinessProbe": {"tcpSocket": {"port": never_port}, "periodSeconds": 60},
            "resources": {"requests": {"cpu": "5m", "memory": "16Mi"},
                          "limits": {"memory": "64Mi"}},
            "securityContext": jobspec.container_security_context(),
        })
    sec = jobspec.pod_security_context()
    if any(p < 1024 for p in serve):
        # binding a low port as nobody: a "safe" sysctl that the restricted profile allows
        sec = sec | {"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": _pod_name(phase, ep),
            "namespace": ep.namespace,
            "labels": dict(sorted(labels.items())),
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
                                 "name": _owner_name(phase), "uid": "__OWNER_UID__",
                                 "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": {
            "serviceAccountName": ep.service_account or "default",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "securityContext": sec,
            "containers": containers,
        },
    }


SCRIPT = r"""#!/bin/sh
# cni-migrate policy probes: create probe pods, connect, compare with Calico's verdicts.
set -u
DIR="${PROBE_DIR:-/probe}"
OUT="${PROBE_OUT:-/tmp/probe}"
PHASE="$1"
OWNER="$2"
mkdir -p "$OUT"
: > "$OUT/owners"
cleanup() {
  while read -r ns uid; do
    kubectl -n "$ns" delete configmap "$OWNER" --ignore-not-found --wait=false >/dev/null 2>&1
  done < "$OUT/owners"
}
trap cleanup EXIT
for ns in $(cat "$DIR/namespaces"); do
  # a run cut short leaves its owner (and so its pods) behind: start clean
  # (foreground: returns once its pods are gone, so their names are free again)
  kubectl -n "$ns" delete configmap "$OWNER" --ignore-not-found --cascade=foreground \
    --wait=true --timeout=180s >/dev/null 2>&1
  uid=$(kubectl -n "$ns" create configmap "$OWNER" --from-literal=phase="$PHASE" \
        -o jsonpath='{.metadata.uid}') || { echo "cannot create $ns/$OWNER" >&2; exit 3; }
  echo "$ns $uid" >> "$OUT/owners"
done
while read -r ns pod; do
  uid=""
  while read -r ons ouid; do [ "$ons" = "$ns" ] && uid="$ouid"; done < "$OUT/owners"
  sed "s/__OWNER_UID__/$uid/" "$DIR/$pod.yaml" | kubectl create -f - >/dev/null \
    || { echo "cannot create probe pod $ns/$pod" >&2; exit 3; }
done < "$DIR/pods"
# readiness never succeeds on purpose: wait for Running and an address instead
while read -r ns pod; do
  i=0
  until [ -n "$(kubectl -n "$ns" get pod "$pod" -o jsonpath='{.status.podIP}' 2>/dev/null)" ] \
        && [ "$(kubectl -n "$ns" get pod "$pod" -o jsonpath='{.status.phase}')" = Running ]; do
    i=$((i + 1)); [ "$i" -gt 90 ] && { echo "probe pod $ns/$pod not running" >&2; exit 3; }
    sleep 2
  done
done < "$DIR/pods"
fail=0; total=0
: > "$OUT/results"
while read -r id cns cpod sns spod port expect; do
  total=$((total + 1))
  ip=$(kubectl -n "$sns" get pod "$spod" -o jsonpath='{.status.podIP}')
  case "$ip" in *:*) addr="[$ip]:$port" ;; *) addr="$ip:$port" ;; esac
  cont=$(kubectl -n "$cns" get pod "$cpod" -o jsonpath='{.spec.containers[0].name}')
  if kubectl -n "$cns" exec "$cpod" -c "$cont" -- /agnhost connect "$addr" \
       --timeout=TIMEOUT_ > "$OUT/out" 2>&1; then got=allow
  elif grep -q TIMEOUT "$OUT/out"; then got=deny
  else got="error: $(tr '\n"' '  ' < "$OUT/out" | cut -c1-120)"; fi
  if [ "$got" = "$expect" ]; then ok=true; else ok=false; fail=$((fail + 1)); fi
  echo "$id|$cns/$cpod|$sns/$spod|$port|$expect|$got|$ok" >> "$OUT/results"
done < "$DIR/matrix.tsv"
echo "--- JSON ---"
printf '{"phase": "%s", "total": %d, "failed": %d, "probes": [' "$PHASE" "$total" "$fail"
sep=""
while IFS='|' read -r id c s port expect got ok; do
  printf '%s{"id": "%s", "client": "%s", "server": "%s", "port": %s, "expected": "%s", "got": "%s", "ok": %s}' \
    "$sep" "$id" "$c" "$s" "$port" "$expect" "$got" "$ok"
  sep=", "
done < "$OUT/results"
echo "]}"
echo "--- JUnit ---"
echo "<testsuite name=\"cni-migrate-probes-$PHASE\" tests=\"$total\" failures=\"$fail\">"
while IFS='|' read -r id c s port expect got ok; do
  echo "  <testcase classname=\"probes.$PHASE\" name=\"$id $c -&gt; $s TCP/$port expect $expect\">"
  [ "$ok" = true ] || echo "    <failure message=\"got $got\"/>"
  echo "  </testcase>"
done < "$OUT/results"
echo "</testsuite>"
[ "$fail" -eq 0 ] || { echo "$fail of $total probes do not match Calico's verdicts" >&2; exit 1; }
echo "all $total probes match"
""".replace("TIMEOUT_", CONNECT_TIMEOUT)


def _role_rules(phase: str) -> list[dict]:
    return [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
        # delete --wait watches the one object (a name field selector, so resourceNames holds)
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [_owner_name(phase)],
         "verbs": ["delete", "get", "list", "watch"]},
        # blockOwnerDeletion on the probe pods (OwnerReferencesPermissionEnforcement)
        {"apiGroups": [""], "resources": ["configmaps/finalizers"],
         "resourceNames": [_owner_name(phase)], "verbs": ["update"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get"]},
        # kubectl exec: POST (SPDY) or GET (WebSocket, kubectl >= 1.30)
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]},
    ]


def probe_items(policy_set: PolicySet, inventory, plan, phase: str, *, felix=None,
                picked: list[Probe] | None = None) -> list[Item]:
    """Items of one probe run (see the module docstring). [] if nothing to probe.
    picked: the probes from pick_probes(), when the caller already has them."""
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}")
    if inventory is None:
        return []
    probes = picked if picked is not None else pick_probes(policy_set, inventory, felix)
    if not probes:
        return []
    kind = f"probe-{phase}"
    ns = plan.options.namespace
    sa = jobspec.service_account("probe")
    owner = _owner_name(phase)

    eps: dict[tuple, Endpoint] = {}
    ports: dict[tuple, set] = {}
    for p in probes:
        for ep in (p.client, p.server):
            eps.setdefault(_ident(ep), ep)
            ports.setdefault(_ident(ep), set())
        ports[_ident(p.server)].add(p.port)
    idents = sorted(eps, key=lambda k: (k[0] or "", k[1], k[2] or ""))[:MAX_PODS]
    pods = {k: probe_pod(plan, phase, eps[k], sorted(ports[k])) for k in idents}

    data = {"probe.sh": SCRIPT,
            "namespaces": "\n".join(sorted({k[0] for k in idents})) + "\n",
            "pods": "".join(f"{p['metadata']['namespace']} {p['metadata']['name']}\n"
                            for p in pods.values())}
    rows = []
    for p in probes:
        c, s = _ident(p.client), _ident(p.server)
        if c not in pods or s not in pods:
            continue
        rows.append(f"{p.id} {p.client.namespace} {pods[c]['metadata']['name']} "
                    f"{p.server.namespace} {pods[s]['metadata']['name']} {p.port} {p.expected}\n")
    data["matrix.tsv"] = "".join(rows)
    data["matrix.md"] = probe_matrix_markdown(probes)
    for pod in pods.values():
        data[f"{pod['metadata']['name']}.yaml"] = json.dumps(pod, indent=1, sort_keys=False) + "\n"

    cm_name = f"cni-migrate-{kind}"
    items = [
        Item({"apiVersion": "v1", "kind": "ServiceAccount",
              "metadata": jobspec.meta(sa, "probe", ns),
              "automountServiceAccountToken": True}, STEP_SETUP),
        Item({"apiVersion": "v1", "kind": "ConfigMap", "metadata": jobspec.meta(cm_name, "probe", ns),
              "data": dict(sorted(data.items()))}, STEP_SETUP),
    ]
    for tns in sorted({k[0] for k in idents}):
        role = f"cni-migrate-{kind}"
        items.append(Item({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                           "metadata": jobspec.meta(role, "probe", tns),
                           "rules": _role_rules(phase)}, STEP_SETUP))
        items.append(Item({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                           "metadata": jobspec.meta(role, "probe", tns),
                           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                       "name": role},
                           "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]},
                          STEP_SETUP))
    vol, mount = jobspec.tmp_volume()
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": jobspec.meta(jobspec.job_name(plan, kind), "probe", ns),
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": 900,
            "template": {
                "metadata": {"labels": jobspec.labels("probe")},
                "spec": {
                    "serviceAccountName": sa,
                    "restartPolicy": "Never",
                    "securityContext": jobspec.pod_security_context(),
                    "containers": [{
                        "name": "probe",
                        "image": plan.options.images["kubectl"],
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["/bin/sh", "/probe/probe.sh"],
                        "args": [phase, owner],
                        "env": [{"name": "HOME", "value": "/tmp"}],
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                      "limits": {"memory": "256Mi"}},
                        "securityContext": jobspec.container_security_context(),
                        "volumeMounts": [{"name": "probe", "mountPath": "/probe",
                                          "readOnly": True}, mount],
                    }],
                    "volumes": [{"name": "probe", "configMap": {"name": cm_name,
                                                                "defaultMode": 0o444}}, vol],
                },
            },
        },
    }
    items.append(Item(job, STEP_GATE))
    return items
