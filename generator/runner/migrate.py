"""Per-node migration runner. STANDARD LIBRARY ONLY: runs in the migration's node Jobs as
    python /scripts/migrate.py --batch nodes-01 --node worker-1 --node worker-2 --cilium-cidr ...

For each node of the batch in turn (docs: "Migrating a cluster to Cilium", per-node steps):
  1. check/set the node label io.cilium.migration/cilium-default=true (GitOps may have set it,
     but a server-side-applied label can land late or early: the Job must not depend on it)
  2. cordon
  3. evict the pods through the Eviction API (PodDisruptionBudgets honoured; 429 retried with
     backoff up to --evict-timeout; DaemonSet and mirror pods skipped)
  4. delete the Cilium agent pod on the node, wait until its replacement is Ready (it reads the
     per-node config only at start)
  5. delete pods still on the node that are not hostNetwork and hold an address outside the
     Cilium pod CIDR (DaemonSet pods keep old-CNI addresses until deleted)
  6. start a check pod pinned to the node: it must get an address in the Cilium CIDR and reach
     the API server (its exit status); then delete it
  7. uncordon (unless the node was cordoned before the migration touched it)

Progress is recorded on the Node (annotations cni-migrate.io/*), so a re-run skips nodes that are
done and redoes the unfinished one from the start (every step is idempotent). A failure leaves
the node cordoned, records the error on it and prints what to do next; exit status 1.

--reverse (rollback): cordon, drain, remove the label, restart the agent, delete pods holding
Cilium addresses so they come back on the old CNI, check the node gives old-CNI addresses,
uncordon.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import time
from dataclasses import dataclass, field

try:  # imported as generator.runner.migrate (tests) or run as /scripts/migrate.py (Jobs)
    from . import kubeapi
except ImportError:  # pragma: no cover - script mode: the sibling files of this one
    import os as _os
    sys.path.insert(0, _os.path.dirname(_os.path.abspath(__file__)))  # also under -P/-I
    import kubeapi

A = "cni-migrate.io/"
STATE, STEP, ERROR = A + "state", A + "step", A + "error"
STARTED, FINISHED, BATCH = A + "started-at", A + "finished-at", A + "batch"
WAS_CORDONED = A + "was-unschedulable"
DONE, ROLLED_BACK, RUNNING, FAILED = "done", "rolled-back", "in-progress", "failed"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
TERMINAL = ("Succeeded", "Failed")


class StepFailed(Exception):
    def __init__(self, step: str, message: str, next_steps: list[str]):
        super().__init__(message)
        self.step = step
        self.message = message
        self.next_steps = next_steps


@dataclass
class Config:
    nodes: list[str]
    cilium_cidr: str
    batch: str = "batch"
    cilium_namespace: str = "kube-system"
    agent_selector: str = "k8s-app=cilium"
    label: str = "io.cilium.migration/cilium-default"
    namespace: str = "cni-migration"          # where the check pod runs
    check_image: str = "docker.io/library/python:3.12-alpine"
    reverse: bool = False
    evict_timeout: float = 600
    agent_timeout: float = 300
    check_timeout: float = 180
    poll: float = 2.0
    max_backoff: float = 30.0


@dataclass
class Clock:
    """Wall time for the records, monotonic time for deadlines; injectable for tests."""
    now: object = time.time
    monotonic: object = time.monotonic
    sleep: object = time.sleep

    def stamp(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.now()))


@dataclass
class NodeResult:
    node: str
    status: str                    # done | rolled-back | skipped | failed
    started: str | None = None
    finished: str | None = None
    seconds: float | None = None
    steps: dict = field(default_factory=dict)   # step -> seconds
    error: str | None = None


# --- helpers usable on their own (and by checks.py) ----------------------------------------------

def in_cidr(ip: str | None, cidr: str) -> bool:
    if not ip:
        return False
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


def pod_ips(pod: dict) -> list[str]:
    status = pod.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    return ips


def is_ready(pod: dict) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def owner_kind(pod: dict) -> str | None:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("kind")
    refs = (pod.get("metadata") or {}).get("ownerReferences") or []
    return refs[0].get("kind") if refs else None


def is_mirror(pod: dict) -> bool:
    meta = pod.get("metadata") or {}
    return MIRROR_ANNOTATION in (meta.get("annotations") or {}) or owner_kind(pod) == "Node"


def selector_matches(sel: dict | None, labels: dict | None) -> bool:
    """A LabelSelector (matchLabels + matchExpressions); an empty selector matches every pod."""
    sel, labels = sel or {}, labels or {}
    if all(labels.get(k) == v for k, v in (sel.get("matchLabels") or {}).items()):
        for e in sel.get("matchExpressions") or []:
            key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
            ok = {"In": labels.get(key) in values,
                  "NotIn": key not in labels or labels[key] not in values,
                  "Exists": key in labels, "DoesNotExist": key not in labels}.get(op, False)
            if not ok:
                return False
        return True
    return False


def ref(pod: dict) -> str:
    m = pod.get("metadata") or {}
    return f"{m.get('namespace')}/{m.get('name')}"


CHECK_SCRIPT = """\
import os, ssl, sys, time, urllib.error, urllib.request
host = os.environ["KUBERNETES_SERVICE_HOST"]
port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
if ":" in host:
    host = "[" + host + "]"
# Reachability only: no credentials are sent, so the certificate is not needed.
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
for attempt in range(15):
    try:
        urllib.request.urlopen("https://%s:%s/version" % (host, port), context=ctx, timeout=5)
        print("reached the API server"); sys.exit(0)
    except urllib.error.HTTPError as e:  # any HTTP answer (even 401/403) means reachable
        print("reached the API server (HTTP %d)" % e.code); sys.exit(0)
    except Exception as e:
        print("attempt %d: %s" % (attempt + 1, e)); time.sleep(2)
sys.exit(1)
"""


class Runner:
    def __init__(self, api: kubeapi.Client, cfg: Config, out=None, clock: Clock | None = None):
        self.api = api
        self.cfg = cfg
        self.out = out or sys.stdout
        self.clock = clock or Clock()
        self.current: NodeResult | None = None   # the node being worked on, for the summary

    # --- output ---------------------------------------------------------------------------------
    def log(self, msg: str) -> None:
        print(f"{self.clock.stamp()} {msg}", file=self.out, flush=True)

    def emit(self, record: dict) -> None:
        print(json.dumps(record, sort_keys=True), file=self.out, flush=True)

    # --- node state -----------------------------------------------------------------------------
    def node(self, name: str) -> dict:
        try:
            return self.api.get(kubeapi.node_path(name))
        except kubeapi.ApiError as e:
            if e.status == 404:
                raise StepFailed("lookup", f"node {name} does not exist",
                                 ["check the node list of this wave in the plan; regenerate the "
                                  "repository if nodes were replaced"]) from None
            raise

    def annotate(self, name: str, values: dict) -> None:
        self.api.patch(kubeapi.node_path(name), {"metadata": {"annotations": values}})

    def step(self, name: str, step: str) -> None:
        self.log(f"node {name}: {step}")
        self.annotate(name, {STEP: step})

    # --- the batch --------------------------------------------------------------------------------
    def run(self) -> int:
        cfg = self.cfg
        mode = "reverse" if cfg.reverse else "forward"
        batch_started, t0 = self.clock.stamp(), self.clock.monotonic()
        self.log(f"batch {cfg.batch} ({mode}): nodes {', '.join(cfg.nodes)}")
        results: list[NodeResult] = []
        failed = None
        for name in cfg.nodes:
            self.current = NodeResult(name, RUNNING)
            try:
                res = self.one_node(name)
            except (StepFailed, kubeapi.ApiError, OSError) as e:
                if not isinstance(e, StepFailed):
                    e = StepFailed("api", str(e), [
                        "check the ServiceAccount's RBAC (see docs/jobs.md) and the API server"])
                res = self.current          # keeps the start time and the steps that ran
                res.status, res.error = FAILED, f"{e.step}: {e.message}"
                res.finished = self.clock.stamp()
                self.fail_node(name, e)
                failed = e
            results.append(res)
            if failed:
                break
        summary = {
            "batch": cfg.batch, "mode": mode, "started": batch_started,
            "finished": self.clock.stamp(),
            "seconds": round(self.clock.monotonic() - t0, 1),
            "result": "failed" if failed else "ok",
            "nodes": [r.__dict__ for r in results],
            "not_started": [n for n in cfg.nodes if n not in {r.node for r in results}],
        }
        self.emit({"cni-migrate-batch": summary})
        return 1 if failed else 0

    def one_node(self, name: str) -> NodeResult:
        cfg = self.cfg
        node = self.node(name)
        ann = (node.get("metadata") or {}).get("annotations") or {}
        labelled = ((node.get("metadata") or {}).get("labels") or {}).get(cfg.label) == "true"
        target = ROLLED_BACK if cfg.reverse else DONE
        if ann.get(STATE) == target and labelled != cfg.reverse:
            self.log(f"node {name}: already {target} ({ann.get(FINISHED, '?')}), skipped")
            return NodeResult(name, "skipped", ann.get(STARTED), ann.get(FINISHED))
        started, t0 = self.clock.stamp(), self.clock.monotonic()
        record = {STATE: RUNNING, STARTED: started, FINISHED: None, ERROR: None,
                  BATCH: cfg.batch}
        if WAS_CORDONED not in ann or ann.get(STATE) in (DONE, ROLLED_BACK):
            # A fresh run (not a resume): remember whether someone else cordoned the node.
            record[WAS_CORDONED] = "true" if (node.get("spec") or {}).get("unschedulable") \
                else "false"
        self.annotate(name, record)
        res = self.current = NodeResult(name, RUNNING, started)
        steps = self.reverse_steps(name) if cfg.reverse else self.forward_steps(name)
        for step, fn in steps:
            s0 = self.clock.monotonic()
            self.step(name, step)
            fn()
            res.steps[step] = round(self.clock.monotonic() - s0, 1)
        res.finished = self.clock.stamp()
        res.seconds = round(self.clock.monotonic() - t0, 1)
        res.status = target
        self.annotate(name, {STATE: target, STEP: None, FINISHED: res.finished})
        self.log(f"node {name}: {target} in {res.seconds}s")
        return res

    def forward_steps(self, name: str):
        return [("label", lambda: self.set_label(name, True)),
                ("cordon", lambda: self.cordon(name)),
                ("drain", lambda: self.drain(name)),
                ("restart-agent", lambda: self.restart_agent(name)),
                ("recreate-pods", lambda: self.recreate_pods(name, cilium=False)),
                ("check-pod", lambda: self.check_pod(name, want_cilium=True)),
                ("uncordon", lambda: self.uncordon(name))]

    def reverse_steps(self, name: str):
        return [("cordon", lambda: self.cordon(name)),
                ("drain", lambda: self.drain(name)),
                ("unlabel", lambda: self.set_label(name, False)),
                ("restart-agent", lambda: self.restart_agent(name)),
                ("recreate-pods", lambda: self.recreate_pods(name, cilium=True)),
                ("check-pod", lambda: self.check_pod(name, want_cilium=False)),
                ("uncordon", lambda: self.uncordon(name))]

    def fail_node(self, name: str, e: StepFailed) -> None:
        try:
            self.annotate(name, {STATE: FAILED, ERROR: f"{e.step}: {e.message}"[:1000],
                                 FINISHED: self.clock.stamp()})
        except (kubeapi.ApiError, OSError) as err:
            self.log(f"node {name}: could not record the failure on the node: {err}")
        lines = [f"FAILED: node {name}, step {e.step}: {e.message}",
                 f"The node is left cordoned (kubectl get node {name}).", "What to do next:"]
        lines += [f"  {i}. {s}" for i, s in enumerate(e.next_steps, 1)]
        lines.append(f"  {len(e.next_steps) + 1}. re-run this Job (delete it and let GitOps "
                     "re-create it, or sync again): done nodes are skipped, this node is redone")
        lines.append(f"  To abandon the node instead: kubectl uncordon {name}"
                     + ("" if self.cfg.reverse else
                        f" && kubectl label node {name} {self.cfg.label}- and delete its "
                        "Cilium pod; revert this wave's commit too, or GitOps puts the label "
                        "back"))
        print("\n".join(lines), file=self.out, flush=True)

    # --- steps ----------------------------------------------------------------------------------
    def set_label(self, name: str, on: bool) -> None:
        labels = (self.node(name).get("metadata") or {}).get("labels") or {}
        if (labels.get(self.cfg.label) == "true") == on:
            return
        self.api.patch(kubeapi.node_path(name),
                       {"metadata": {"labels": {self.cfg.label: "true" if on else None}}})

    def cordon(self, name: str) -> None:
        if not (self.node(name).get("spec") or {}).get("unschedulable"):
            self.api.patch(kubeapi.node_path(name), {"spec": {"unschedulable": True}})

    def uncordon(self, name: str) -> None:
        ann = (self.node(name).get("metadata") or {}).get("annotations") or {}
        if ann.get(WAS_CORDONED) == "true":
            self.log(f"node {name}: was cordoned before the migration; left cordoned")
            return
        self.api.patch(kubeapi.node_path(name), {"spec": {"unschedulable": None}})

    def pods_on(self, name: str) -> list[dict]:
        return self.api.list("/api/v1/pods", field_selector=f"spec.nodeName={name}")

    def blocking_pdbs(self, pod: dict) -> list[str]:
        ns = (pod.get("metadata") or {}).get("namespace")
        labels = (pod.get("metadata") or {}).get("labels") or {}
        try:
            pdbs = self.api.list(f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets")
        except kubeapi.ApiError as e:    # say why none is named, rather than "none found"
            return [f"unknown, {e.reason}"]
        return sorted(f"{ns}/{p['metadata']['name']}" for p in pdbs
                      if selector_matches((p.get("spec") or {}).get("selector"), labels))

    def drain(self, name: str) -> None:
        cfg = self.cfg
        pending = {}
        bare = []
        for p in self.pods_on(name):
            phase = (p.get("status") or {}).get("phase")
            if owner_kind(p) == "DaemonSet" or is_mirror(p) or phase in TERMINAL:
                continue
            if ref(p) == f"{cfg.namespace}/{check_pod_name(name)}":
                continue  # our own check pod from an earlier attempt: check_pod replaces it
            if owner_kind(p) is None:
                bare.append(ref(p))
            pending[ref(p)] = p
        if bare:
            # Like kubectl drain without --force: an evicted bare pod is gone for good.
            raise StepFailed("drain", "pods not managed by any controller would be lost: "
                             + ", ".join(sorted(bare)), [
                                 "re-create them under a Deployment/StatefulSet, or move or "
                                 "delete them yourself if losing them is acceptable"])
        evicted: dict[str, str] = {}          # ref -> uid, to wait until they are gone
        deadline = self.clock.monotonic() + cfg.evict_timeout
        delay = cfg.poll
        refused: dict[str, str] = {}
        while pending:
            for key in sorted(pending):
                p = pending[key]
                ns, pname = key.split("/", 1)
                try:
                    self.api.evict(ns, pname)
                except kubeapi.ApiError as e:
                    if e.status == 404:
                        del pending[key]
                        continue
                    if e.status in (429, 500, 503):  # 500: several PDBs match (retry like kubectl)
                        refused[key] = e.reason
                        continue
                    raise
                evicted[key] = (p.get("metadata") or {}).get("uid", "")
                refused.pop(key, None)
                del pending[key]
                self.log(f"node {name}: evicted {key}")
            if not pending:
                break
            if self.clock.monotonic() >= deadline:
                blocked = []
                for key in sorted(pending):
                    pdbs = self.blocking_pdbs(pending[key])
                    blocked.append(f"pod {key} (PodDisruptionBudget "
                                   f"{', '.join(pdbs) if pdbs else 'none found'}: "
                                   f"{refused.get(key, 'refused')})")
                raise StepFailed("drain", f"eviction refused for {cfg.evict_timeout:g}s: "
                                 + "; ".join(blocked), [
                                     "make room for the disruption: scale the workload up, or "
                                     "wait until its other replicas are Ready, or relax the "
                                     "PodDisruptionBudget named above",
                                     "never delete the pod by hand unless losing it is safe"])
            self.clock.sleep(delay)
            delay = min(delay * 2, cfg.max_backoff)
        # Evicted pods terminate within their grace period: a fresh budget for that.
        self.wait_gone(name, evicted, self.clock.monotonic() + cfg.evict_timeout, "drain")

    def wait_gone(self, name: str, pods: dict[str, str], deadline: float, step: str) -> None:
        """Wait until each pod (ref -> uid) is deleted (or replaced by one with another uid)."""
        left = dict(pods)
        while left:
            for key in sorted(left):
                ns, pname = key.split("/", 1)
                cur = self.api.get_or_none(kubeapi.pod_path(ns, pname))
                if cur is None or (cur.get("metadata") or {}).get("uid") != left[key]:
                    del left[key]
            if not left:
                return
            if self.clock.monotonic() >= deadline:
                raise StepFailed(step, "pods still terminating: " + ", ".join(sorted(left)), [
                    "look at why they do not terminate (finalizers, a long "
                    "terminationGracePeriodSeconds, a stuck kubelet): kubectl describe pod"])
            self.clock.sleep(self.cfg.poll)

    def agent_pods(self, name: str) -> list[dict]:
        return self.api.list(f"/api/v1/namespaces/{self.cfg.cilium_namespace}/pods",
                             label_selector=self.cfg.agent_selector,
                             field_selector=f"spec.nodeName={name}")

    def restart_agent(self, name: str) -> None:
        cfg = self.cfg
        old = self.agent_pods(name)
        if not old:
            raise StepFailed("restart-agent", f"no Cilium agent pod ({cfg.agent_selector}) "
                             f"in {cfg.cilium_namespace} on node {name}", [
                                 "check the Cilium DaemonSet tolerates this node's taints and "
                                 "is scheduled on it: kubectl -n "
                                 f"{cfg.cilium_namespace} get pods -o wide"])
        old_uids = {(p.get("metadata") or {}).get("uid") for p in old}
        for p in old:
            self.api.delete(kubeapi.pod_path(cfg.cilium_namespace, p["metadata"]["name"]))
        deadline = self.clock.monotonic() + cfg.agent_timeout
        while True:
            fresh = [p for p in self.agent_pods(name)
                     if (p.get("metadata") or {}).get("uid") not in old_uids]
            if any(is_ready(p) for p in fresh):
                return
            if self.clock.monotonic() >= deadline:
                names = ", ".join(ref(p) for p in fresh) or "none created yet"
                raise StepFailed("restart-agent", f"the new Cilium agent on {name} is not Ready "
                                 f"after {cfg.agent_timeout:g}s ({names})", [
                                     f"kubectl -n {cfg.cilium_namespace} logs <the pod> "
                                     "-c cilium-agent (and the init containers): look for CNI "
                                     "config or tunnel port errors",
                                     "the agent is not Ready until it wrote its CNI config "
                                     "(1.16+): check the CiliumNodeConfig matches the label"])
            self.clock.sleep(cfg.poll)

    def recreate_pods(self, name: str, *, cilium: bool) -> None:
        """Forward (cilium=False): delete pods with addresses outside the Cilium CIDR.
        Reverse (cilium=True): delete pods with addresses inside it."""
        cfg = self.cfg
        deadline = self.clock.monotonic() + cfg.check_timeout
        # A few rounds: a pod started while the agent restarted can still get an old address.
        for _ in range(3):
            stale: dict[str, str] = {}
            for p in self.pods_on(name):
                spec = p.get("spec") or {}
                phase = (p.get("status") or {}).get("phase")
                if spec.get("hostNetwork") or is_mirror(p) or phase in TERMINAL:
                    continue
                ips = pod_ips(p)
                if not ips or (in_cidr(ips[0], cfg.cilium_cidr) != cilium):
                    continue
                ns, pname = ref(p).split("/", 1)
                if ns == cfg.namespace and pname == check_pod_name(name):
                    continue
                if self.api.delete(kubeapi.pod_path(ns, pname)):
                    stale[ref(p)] = (p.get("metadata") or {}).get("uid", "")
                    self.log(f"node {name}: deleted {ref(p)} ({ips[0]}) to re-create it")
            if not stale:
                return
            self.wait_gone(name, stale, deadline, "recreate-pods")

    def check_pod(self, name: str, *, want_cilium: bool) -> None:
        cfg = self.cfg
        pname = check_pod_name(name)
        path = kubeapi.pod_path(cfg.namespace, pname)
        deadline = self.clock.monotonic() + cfg.check_timeout
        left = self.api.get_or_none(path)    # a failed earlier attempt leaves its pod for logs
        if left is not None:
            self.api.delete(path, grace_seconds=0)
            self.wait_gone(name, {ref(left): left["metadata"].get("uid", "")}, deadline,
                           "check-pod")
        self.api.create(kubeapi.pod_path(cfg.namespace), check_pod_manifest(cfg, name, pname))
        where = "inside" if want_cilium else "outside"
        while True:
            p = self.api.get_or_none(path) or {}
            ips = pod_ips(p)
            phase = (p.get("status") or {}).get("phase")
            if ips and in_cidr(ips[0], cfg.cilium_cidr) != want_cilium:
                raise StepFailed("check-pod", f"check pod {cfg.namespace}/{pname} got address "
                                 f"{ips[0]}, not {where} the Cilium pod CIDR {cfg.cilium_cidr}",
                                 check_next_steps(cfg, name, want_cilium))
            if phase == "Succeeded" and ips:
                break
            if phase == "Failed":
                raise StepFailed("check-pod", f"check pod {cfg.namespace}/{pname} "
                                 f"({ips[0] if ips else 'no address'}) could not reach the API "
                                 "server", [f"kubectl -n {cfg.namespace} logs {pname}",
                                            "check the node's routes and the Cilium agent log "
                                            "(cilium-dbg status) for tunnel errors"])
            if self.clock.monotonic() >= deadline:
                raise StepFailed("check-pod", f"check pod {cfg.namespace}/{pname} did not "
                                 f"finish in {cfg.check_timeout:g}s (phase {phase or 'unknown'}, "
                                 f"address {ips[0] if ips else 'none'})", [
                                     f"kubectl -n {cfg.namespace} describe pod {pname}: "
                                     "sandbox creation errors name the CNI that failed",
                                     f"pull access to {cfg.check_image} from the node"])
            self.clock.sleep(cfg.poll)
        self.api.delete(path, grace_seconds=0)


def check_pod_name(node: str) -> str:
    return f"cni-migrate-check-{node}"[:63].rstrip("-.")


def check_next_steps(cfg: Config, node: str, want_cilium: bool) -> list[str]:
    if want_cilium:
        return [f"the node still hands out old-CNI addresses: check the CiliumNodeConfig "
                f"selects {cfg.label}=true and that the agent wrote "
                "/etc/cni/net.d/05-cilium.conflist (cilium-dbg shows config-sources)"]
    return [f"Cilium's CNI config is still on {node}: on the node, remove "
            "/etc/cni/net.d/05-cilium.conflist and rename the old CNI's *.cilium_bak file "
            "back (cni-exclusive renamed it), or restart the old CNI's pod there so it rewrites "
            "its config"]


def check_pod_manifest(cfg: Config, node: str, name: str) -> dict:
    """A restricted pod pinned to the node (nodeName bypasses the scheduler, so the cordon does
    not stop it) that exits 0 once it reached the API server."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": cfg.namespace,
                     "labels": {"app.kubernetes.io/name": "cni-migrate",
                                "app.kubernetes.io/component": "check-pod"}},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
            "tolerations": [{"operator": "Exists"}],
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "check", "image": cfg.check_image, "imagePullPolicy": "IfNotPresent",
                "command": ["python", "-c", CHECK_SCRIPT],
                "env": [{"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}],
                "resources": {"requests": {"cpu": "10m", "memory": "32Mi"},
                              "limits": {"memory": "64Mi"}},
                "securityContext": {"allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                                    "runAsUser": 65534, "capabilities": {"drop": ["ALL"]},
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
        },
    }


def parse_args(argv: list[str]) -> tuple[Config, str | None]:
    p = argparse.ArgumentParser(prog="migrate.py", description="per-node CNI migration runner")
    p.add_argument("--node", dest="nodes", action="append", required=True)
    p.add_argument("--batch", default="batch")
    p.add_argument("--cilium-cidr", required=True)
    p.add_argument("--cilium-namespace", default="kube-system")
    p.add_argument("--agent-selector", default="k8s-app=cilium")
    p.add_argument("--label", default="io.cilium.migration/cilium-default")
    p.add_argument("--namespace", default=None, help="for the check pod (default: own namespace)")
    p.add_argument("--check-image", default=Config.check_image)
    p.add_argument("--reverse", action="store_true")
    p.add_argument("--evict-timeout", type=float, default=600)
    p.add_argument("--agent-timeout", type=float, default=300)
    p.add_argument("--check-timeout", type=float, default=180)
    p.add_argument("--poll", type=float, default=2.0)
    p.add_argument("--api", default=None, help="API base URL (tests); default: in-cluster")
    a = p.parse_args(argv)
    import os
    cfg = Config(nodes=a.nodes, cilium_cidr=a.cilium_cidr, batch=a.batch,
                 cilium_namespace=a.cilium_namespace, agent_selector=a.agent_selector,
                 label=a.label, namespace=a.namespace or os.environ.get("POD_NAMESPACE",
                                                                        "cni-migration"),
                 check_image=a.check_image, reverse=a.reverse, evict_timeout=a.evict_timeout,
                 agent_timeout=a.agent_timeout, check_timeout=a.check_timeout, poll=a.poll)
    return cfg, a.api


def main(argv: list[str] | None = None, out=None, clock: Clock | None = None) -> int:
    cfg, api_url = parse_args(sys.argv[1:] if argv is None else argv)
    return Runner(kubeapi.Client(api_url), cfg, out=out, clock=clock).run()


if __name__ == "__main__":
    sys.exit(main())
