"""Validation checks that gate the migration's waves. STANDARD LIBRARY ONLY: runs in the gate
Jobs as
    python /scripts/checks.py <phase> --cilium-cidr 10.100.0.0/16 ...

Phases and what they check:
  preflight     nodes Ready; old CNI DaemonSets healthy; PodDisruptionBudgets that allow no
                disruption (named: they would block the drain); the Cilium CIDR clear of every
                CIDR in use
  post-install  Cilium DaemonSet and operator Ready; the old CNI still Ready on every node;
                CoreDNS restart counts not rising (the operator's unmanaged-pod watcher)
  batch         probe DaemonSet pods: Ready with a Cilium address on the switched nodes (an
                old-CNI address with --expect old, after a rollback); this pod gets each
                probe's /hostname; each
                reaches the others (agnhost netexec /dial), resolves the probe Service's DNS
                name and reaches its ClusterIP; this pod reaches the API server and resolves DNS
  final         every non-hostNetwork pod has a Cilium-CIDR address; cilium-config
                enable-policy is not "never"
  removal       no old-CNI DaemonSet, Deployment or pod left

Each check returns Results. The log gets one line per check, a JSON record and a JUnit XML
report; the exit status is 1 if any check failed (the Job fails, the wave does not complete).
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

try:  # package (tests) or script (Jobs)
    from . import kubeapi
    from .migrate import in_cidr, is_ready, pod_ips
except ImportError:  # pragma: no cover - script mode: the sibling files of this one
    import os as _os
    sys.path.insert(0, _os.path.dirname(_os.path.abspath(__file__)))  # also under -P/-I
    import kubeapi
    from migrate import in_cidr, is_ready, pod_ips

PHASES = ("preflight", "post-install", "batch", "final", "removal")


@dataclass
class Result:
    name: str
    ok: bool
    message: str
    details: list[str] = field(default_factory=list)


@dataclass
class Config:
    phase: str
    cilium_cidr: str
    cilium_namespace: str = "kube-system"
    cilium_daemonset: str = "cilium"
    cilium_operator: str = "cilium-operator"
    old_daemonsets: list[str] = field(default_factory=list)            # "ns/name"
    old_selectors: list[tuple[str, str]] = field(default_factory=list) # (ns, label selector)
    old_deployments: list[str] = field(default_factory=list)
    avoid_cidrs: list[tuple[str, str]] = field(default_factory=list)   # (cidr, origin)
    probe_namespace: str = "cni-migration"
    probe_service: str = "cni-migrate-probe"
    probe_selector: str = "app.kubernetes.io/name=cni-migrate-probe"
    probe_port: int = 8080
    nodes: list[str] = field(default_factory=list)                     # the batch's nodes
    cluster_domain: str = "cluster.local"
    coredns_selector: str = "k8s-app=kube-dns"
    settle_seconds: float = 0
    wait_seconds: float = 120          # batch: how long probe pods may take to be Ready
    expect: str = "cilium"             # batch: "cilium", or "old" after a rollback
    all_pairs_up_to: int = 60          # batch: every probe pair below this many probe pods
    attempts: int = 3
    retry_seconds: float = 5
    http_timeout: float = 5
    workers: int = 32


def http_get(url: str, timeout: float) -> tuple[int, str]:
    """(status, body); status 0 with the error text when no HTTP answer came."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (OSError, ValueError) as e:
        return 0, str(e)


def resolve(name: str) -> list[str]:
    return sorted({a[4][0] for a in socket.getaddrinfo(name, None)})


def _host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


class Checks:
    def __init__(self, api: kubeapi.Client, cfg: Config, *, get=http_get, resolver=resolve,
                 sleep=time.sleep):
        self.api = api
        self.cfg = cfg
        self.get = get
        self.resolver = resolver
        self.sleep = sleep

    def run(self) -> list[Result]:
        out: list[Result] = []
        for fn in PHASE_CHECKS[self.cfg.phase]:
            try:
                out.extend(fn(self))
            except kubeapi.ApiError as e:
                out.append(Result(fn.__name__.replace("_", "-"), False,
                                  f"API call failed: {e}"))
        return out

    # --- preflight --------------------------------------------------------------------------
    def nodes_ready(self) -> list[Result]:
        nodes = self.api.list("/api/v1/nodes")
        bad = sorted(n["metadata"]["name"] for n in nodes if not is_ready(n))
        return [Result("nodes-ready", not bad and bool(nodes),
                       f"{len(nodes) - len(bad)}/{len(nodes)} nodes Ready",
                       [f"node {n} is not Ready" for n in bad])]

    def old_cni_healthy(self) -> list[Result]:
        out = []
        for ref in self.cfg.old_daemonsets:
            ns, name = ref.split("/", 1)
            ds = self.api.get_or_none(f"/apis/apps/v1/namespaces/{ns}/daemonsets/{name}")
            if ds is None:
                out.append(Result(f"old-cni-daemonset {ref}", False, "DaemonSet not found"))
                continue
            st = ds.get("status") or {}
            desired, ready = st.get("desiredNumberScheduled", 0), st.get("numberReady", 0)
            unavailable = st.get("numberUnavailable", 0)
            ok = desired > 0 and ready == desired and not unavailable
            out.append(Result(f"old-cni-daemonset {ref}", ok,
                              f"{ready}/{desired} Ready, {unavailable} unavailable"))
        return out

    def pdbs_blocking(self) -> list[Result]:
        pdbs = self.api.list("/apis/policy/v1/poddisruptionbudgets")
        blocking = []
        for p in pdbs:
            st = p.get("status") or {}
            if st.get("disruptionsAllowed", 0) < 1 and st.get("expectedPods", 1) > 0:
                m = p["metadata"]
                blocking.append(f"PodDisruptionBudget {m.get('namespace')}/{m['name']} allows 0 "
                                f"disruptions ({st.get('currentHealthy', '?')} healthy, "
                                f"{st.get('desiredHealthy', '?')} required): draining a node "
                                "with its pods will block")
        return [Result("pdbs-allow-disruption", not blocking,
                       f"{len(blocking)} of {len(pdbs)} PodDisruptionBudgets allow no disruption",
                       sorted(blocking))]

    def cidrs_clear(self) -> list[Result]:
        new = ipaddress.ip_network(self.cfg.cilium_cidr, strict=False)
        clashes = []
        for cidr, origin in self.cfg.avoid_cidrs:
            net = ipaddress.ip_network(cidr, strict=False)
            if net.version == new.version and net.overlaps(new):
                clashes.append(f"{cidr} ({origin}) overlaps {new}")
        for n in self.api.list("/api/v1/nodes"):
            name = n["metadata"]["name"]
            spec = n.get("spec") or {}
            for cidr in spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []):
                net = ipaddress.ip_network(cidr, strict=False)
                if net.version == new.version and net.overlaps(new):
                    clashes.append(f"{cidr} (node {name} spec.podCIDRs) overlaps {new}")
            for a in (n.get("status") or {}).get("addresses") or []:
                if a.get("type") in ("InternalIP", "ExternalIP") and in_cidr(a.get("address"),
                                                                             str(new)):
                    clashes.append(f"{a['address']} (node {name} {a['type']}) is inside {new}")
        return [Result("cidr-clear", not clashes,
                       f"Cilium pod CIDR {new} overlaps nothing in use" if not clashes
                       else f"Cilium pod CIDR {new} overlaps {len(clashes)} range(s)",
                       sorted(set(clashes)))]

    # --- post-install -------------------------------------------------------------------------
    def cilium_ready(self) -> list[Result]:
        cfg = self.cfg
        out = []
        ds = self.api.get_or_none(f"/apis/apps/v1/namespaces/{cfg.cilium_namespace}/daemonsets/"
                                  f"{cfg.cilium_daemonset}")
        if ds is None:
            out.append(Result("cilium-daemonset", False, "Cilium DaemonSet not found"))
        else:
            st = ds.get("status") or {}
            d, r = st.get("desiredNumberScheduled", 0), st.get("numberReady", 0)
            out.append(Result("cilium-daemonset", d > 0 and r == d, f"{r}/{d} agents Ready"))
        dep = self.api.get_or_none(f"/apis/apps/v1/namespaces/{cfg.cilium_namespace}/deployments/"
                                   f"{cfg.cilium_operator}")
        if dep is None:
            out.append(Result("cilium-operator", False, "Cilium operator Deployment not found"))
        else:
            want = (dep.get("spec") or {}).get("replicas", 1)
            have = (dep.get("status") or {}).get("readyReplicas", 0)
            out.append(Result("cilium-operator", have >= want and want > 0,
                              f"{have}/{want} replicas Ready"))
        return out

    def old_cni_on_every_node(self) -> list[Result]:
        if not self.cfg.old_selectors:
            return []
        nodes = sorted(n["metadata"]["name"] for n in self.api.list("/api/v1/nodes"))
        out = []
        for ns, sel in self.cfg.old_selectors:
            ready = {(p.get("spec") or {}).get("nodeName")
                     for p in self.api.list(f"/api/v1/namespaces/{ns}/pods", label_selector=sel)
                     if is_ready(p)}
            missing = [n for n in nodes if n not in ready]
            out.append(Result(f"old-cni-on-every-node {ns}:{sel}", not missing,
                              f"Ready on {len(nodes) - len(missing)}/{len(nodes)} nodes",
                              [f"no Ready old-CNI pod on node {n}" for n in missing]))
        return out

    def _coredns_sample(self) -> dict[str, tuple[str, int]]:
        pods = self.api.list("/api/v1/namespaces/kube-system/pods",
                             label_selector=self.cfg.coredns_selector)
        return {p["metadata"].get("uid", p["metadata"]["name"]): (
                    p["metadata"]["name"],
                    sum(c.get("restartCount", 0)
                        for c in (p.get("status") or {}).get("containerStatuses") or []))
                for p in pods}

    def coredns_stable(self) -> list[Result]:
        first = self._coredns_sample()
        if self.cfg.settle_seconds:
            self.sleep(self.cfg.settle_seconds)
        second = self._coredns_sample()
        details = []
        for uid, (name, count) in sorted(first.items()):
            if uid not in second:
                details.append(f"CoreDNS pod kube-system/{name} was deleted while observed (the "
                               "Cilium operator restarts kube-dns pods it does not manage unless "
                               "operator.unmanagedPodWatcher.restart is false)")
            elif second[uid][1] > count:
                details.append(f"CoreDNS pod kube-system/{name} restarted "
                               f"{second[uid][1] - count} time(s) in "
                               f"{self.cfg.settle_seconds:g}s")
        ok = not details and bool(second)
        msg = (f"{len(second)} CoreDNS pods, restart counts steady over "
               f"{self.cfg.settle_seconds:g}s" if ok else
               "no CoreDNS pods found" if not second else "CoreDNS pods restarting")
        return [Result("coredns-stable", ok, msg, details)]

    # --- batch ----------------------------------------------------------------------------------
    def _probe_pods(self) -> list[dict]:
        return self.api.list(f"/api/v1/namespaces/{self.cfg.probe_namespace}/pods",
                             label_selector=self.cfg.probe_selector)

    def _dial(self, src: dict, host: str) -> tuple[bool, str, list[str]]:
        cfg = self.cfg
        q = urllib.parse.urlencode({"request": "hostname", "protocol": "http", "host": host,
                                    "port": cfg.probe_port, "tries": 1})
        status, body = self.get(f"http://{_host(pod_ips(src)[0])}:{cfg.probe_port}/dial?{q}",
                                cfg.http_timeout)
        try:
            data = json.loads(body)
        except ValueError:
            data = {}
        responses = [r for r in data.get("responses") or [] if r]
        errors = data.get("errors") or ([] if status else [body])
        return status == 200 and bool(responses), "; ".join(errors) or f"HTTP {status}", responses

    def _retry(self, tasks: dict, fn) -> dict:
        """Run fn(task) for every task concurrently; retry the failed ones a few times (a
        freshly re-created pod may need a moment for its routes). Returns task -> last result."""
        results: dict = {}
        todo = list(tasks)
        for attempt in range(self.cfg.attempts):
            with ThreadPoolExecutor(max_workers=self.cfg.workers) as pool:
                for key, res in zip(todo, pool.map(lambda k: fn(tasks[k]), todo)):
                    results[key] = res
            todo = [k for k in todo if not results[k][0]]
            if not todo or attempt == self.cfg.attempts - 1:
                break
            self.sleep(self.cfg.retry_seconds)
        return results

    def _probe_state(self) -> tuple[list[dict], list[str]]:
        cfg = self.cfg
        ready = [p for p in self._probe_pods() if pod_ips(p) and is_ready(p)]
        by_node = {(p.get("spec") or {}).get("nodeName"): p for p in ready}
        problems = []
        for n in cfg.nodes:
            p = by_node.get(n)
            if p is None:
                problems.append(f"no Ready probe pod on node {n}")
            elif in_cidr(pod_ips(p)[0], cfg.cilium_cidr) != (cfg.expect == "cilium"):
                where = "outside" if cfg.expect == "cilium" else "inside"
                problems.append(f"probe pod {p['metadata']['name']} on node {n} has "
                                f"{pod_ips(p)[0]}, {where} the Cilium pod CIDR {cfg.cilium_cidr}")
        return ready, problems

    def probes(self) -> list[Result]:
        cfg = self.cfg
        # The runner just re-created the probe pods of the batch: give them time to be Ready.
        polls = max(1, round(cfg.wait_seconds / cfg.retry_seconds)) if cfg.retry_seconds else 1
        for i in range(polls):
            ready, problems = self._probe_state()
            if (ready and not problems) or i == polls - 1:
                break
            self.sleep(cfg.retry_seconds)
        out = [Result("probes-ready", not problems and bool(ready),
                      f"{len(ready)} Ready probe pods" + (
                          f"; batch nodes {', '.join(cfg.nodes)}" if cfg.nodes else ""),
                      problems)]
        if ready:
            out += [self._direct(ready), self._mesh(ready), *self._service(ready)]
        return out

    def _direct(self, ready: list[dict]) -> Result:
        """This pod to every probe: a direct GET of netexec's /hostname."""
        tasks = {p["metadata"]["name"]: p for p in ready}
        res = self._retry(tasks, self._hostname)
        failed = [f"-> {name} ({tasks[name]['spec'].get('nodeName')}, "
                  f"{pod_ips(tasks[name])[0]}): {res[name][1]}"
                  for name in sorted(res) if not res[name][0]]
        return Result("probe-direct", not failed,
                      f"{len(tasks) - len(failed)}/{len(tasks)} probe pods answered this pod",
                      failed)

    def _mesh(self, ready: list[dict]) -> Result:
        """Every probe pod to every other, both ways, up to --all-pairs-up-to probe pods; above
        that, the pairs that involve a batch node (the paths that changed; pairs between
        untouched nodes were checked by earlier waves)."""
        batch = set(self.cfg.nodes) if len(ready) > self.cfg.all_pairs_up_to else set()
        pairs = {}
        for a in ready:
            for b in ready:
                na, nb = a["spec"].get("nodeName"), b["spec"].get("nodeName")
                if a is b or (batch and na not in batch and nb not in batch):
                    continue
                pairs[(a["metadata"]["name"], b["metadata"]["name"])] = (a, b)
        res = self._retry(pairs, lambda ab: self._dial_pod(*ab))
        failed = [f"{a} ({pairs[(a, b)][0]['spec'].get('nodeName')}) -> {b} "
                  f"({pairs[(a, b)][1]['spec'].get('nodeName')}): {res[(a, b)][1]}"
                  for (a, b) in sorted(res) if not res[(a, b)][0]]
        return Result("probe-mesh", not failed,
                      f"{len(pairs) - len(failed)}/{len(pairs)} probe pod pairs connected", failed)

    def _service(self, ready: list[dict]) -> list[Result]:
        """The probe Service by DNS name and by ClusterIP, from the probes on the batch nodes."""
        cfg = self.cfg
        batch = set(cfg.nodes)
        tasks = {p["metadata"]["name"]: p for p in ready
                 if not batch or p["spec"].get("nodeName") in batch}
        fqdn = f"{cfg.probe_service}.{cfg.probe_namespace}.svc.{cfg.cluster_domain}"
        svc = self.api.get_or_none(f"/api/v1/namespaces/{cfg.probe_namespace}/services/"
                                   f"{cfg.probe_service}")
        cluster_ip = ((svc or {}).get("spec") or {}).get("clusterIP")
        out = []
        for label, host in (("probe-service-dns", fqdn), ("probe-service-ip", cluster_ip)):
            if not host or host == "None":
                out.append(Result(label, False, f"Service {cfg.probe_namespace}/"
                                  f"{cfg.probe_service} not found or headless"))
                continue
            res = self._retry(tasks, lambda p, h=host: self._dial(p, h))
            failed = [f"{name} ({tasks[name]['spec'].get('nodeName')}) -> {host}: {res[name][1]}"
                      for name in sorted(res) if not res[name][0]]
            out.append(Result(label, not failed,
                              f"{len(tasks) - len(failed)}/{len(tasks)} probe pods reached {host}",
                              failed))
        return out

    def _hostname(self, p: dict) -> tuple[bool, str]:
        status, body = self.get(f"http://{_host(pod_ips(p)[0])}:{self.cfg.probe_port}/hostname",
                                self.cfg.http_timeout)
        want = (p.get("spec") or {}).get("hostname") or p["metadata"]["name"]
        if status != 200:
            return False, body if not status else f"HTTP {status}"
        return body.strip() == want, f"answered {body.strip()!r}, expected {want!r}"

    def _dial_pod(self, a: dict, b: dict) -> tuple[bool, str]:
        ok, err, responses = self._dial(a, pod_ips(b)[0])
        want = (b.get("spec") or {}).get("hostname") or b["metadata"]["name"]
        if ok and want not in responses:
            return False, f"answered by {responses}, expected {want}"
        return ok, err

    def api_server(self) -> list[Result]:
        try:
            v = self.api.get("/version")
            return [Result("api-server", True, f"reached the API server ({v.get('gitVersion')})")]
        except (kubeapi.ApiError, OSError) as e:
            return [Result("api-server", False, f"cannot reach the API server: {e}")]

    def local_dns(self) -> list[Result]:
        name = f"kubernetes.default.svc.{self.cfg.cluster_domain}"
        try:
            addrs = self.resolver(name)
            return [Result("dns", bool(addrs), f"{name} resolves to {', '.join(addrs)}")]
        except OSError as e:
            return [Result("dns", False, f"cannot resolve {name}: {e}")]

    # --- final ----------------------------------------------------------------------------------
    def pods_on_cilium(self) -> list[Result]:
        stale = []
        pods = self.api.list("/api/v1/pods")
        counted = 0
        for p in pods:
            if (p.get("spec") or {}).get("hostNetwork") or \
                    (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            ips = pod_ips(p)
            if not ips:
                continue
            counted += 1
            if not in_cidr(ips[0], self.cfg.cilium_cidr):
                m = p["metadata"]
                stale.append(f"pod {m.get('namespace')}/{m['name']} on node "
                             f"{(p.get('spec') or {}).get('nodeName')} has {ips[0]}")
        return [Result("pods-on-cilium", not stale,
                       f"{counted - len(stale)}/{counted} pod addresses in {self.cfg.cilium_cidr}",
                       sorted(stale))]

    def enforcement_on(self) -> list[Result]:
        cm = self.api.get_or_none(f"/api/v1/namespaces/{self.cfg.cilium_namespace}/configmaps/"
                                  "cilium-config")
        if cm is None:
            return [Result("policy-enforcement", False, "ConfigMap cilium-config not found")]
        mode = (cm.get("data") or {}).get("enable-policy", "default")
        return [Result("policy-enforcement", mode != "never",
                       f"cilium-config enable-policy is {mode!r}"
                       + (": Cilium enforces no policy" if mode == "never" else ""))]

    # --- removal --------------------------------------------------------------------------------
    def old_cni_gone(self) -> list[Result]:
        left = []
        for kind, refs in (("daemonsets", self.cfg.old_daemonsets),
                           ("deployments", self.cfg.old_deployments)):
            for ref in refs:
                ns, name = ref.split("/", 1)
                if self.api.get_or_none(f"/apis/apps/v1/namespaces/{ns}/{kind}/{name}"):
                    left.append(f"{kind[:-1]} {ref} still exists")
        for ns, sel in self.cfg.old_selectors:
            for p in self.api.list(f"/api/v1/namespaces/{ns}/pods", label_selector=sel):
                left.append(f"pod {ns}/{p['metadata']['name']} ({sel}) on node "
                            f"{(p.get('spec') or {}).get('nodeName')}")
        return [Result("old-cni-removed", not left,
                       "no old-CNI workload left" if not left
                       else f"{len(left)} old-CNI object(s) left", sorted(left))]


PHASE_CHECKS = {
    "preflight": [Checks.nodes_ready, Checks.old_cni_healthy, Checks.pdbs_blocking,
                  Checks.cidrs_clear],
    "post-install": [Checks.cilium_ready, Checks.old_cni_on_every_node, Checks.coredns_stable],
    "batch": [Checks.probes, Checks.api_server, Checks.local_dns],
    "final": [Checks.pods_on_cilium, Checks.enforcement_on],
    "removal": [Checks.old_cni_gone],
}


# --- reports ------------------------------------------------------------------------------------

def to_json(phase: str, results: list[Result]) -> dict:
    return {"phase": phase, "ok": all(r.ok for r in results),
            "passed": sum(r.ok for r in results), "failed": sum(not r.ok for r in results),
            "results": [asdict(r) for r in results]}


def to_junit(phase: str, results: list[Result]) -> str:
    suite = ET.Element("testsuite", {"name": f"cni-migrate.{phase}", "tests": str(len(results)),
                                     "failures": str(sum(not r.ok for r in results)),
                                     "errors": "0"})
    for r in results:
        case = ET.SubElement(suite, "testcase", {"classname": f"cni-migrate.{phase}",
                                                 "name": r.name})
        if r.ok:
            ET.SubElement(case, "system-out").text = r.message
        else:
            fail = ET.SubElement(case, "failure", {"message": r.message})
            fail.text = "\n".join(r.details) or r.message
    return ET.tostring(suite, encoding="unicode")


def report(phase: str, results: list[Result], out) -> int:
    for r in results:
        print(f"{'PASS' if r.ok else 'FAIL'} {r.name}: {r.message}", file=out)
        for d in r.details:
            print(f"     - {d}", file=out)
    print(json.dumps({"cni-migrate-checks": to_json(phase, results)}, sort_keys=True), file=out)
    print("--- junit ---", file=out)
    print(to_junit(phase, results), file=out)
    print("--- end junit ---", file=out, flush=True)
    return 0 if results and all(r.ok for r in results) else 1


def _pair(text: str, sep: str, what: str) -> tuple[str, str]:
    left, found, right = text.partition(sep)
    if not found:
        raise SystemExit(f"checks.py: {what} needs the form A{sep}B, got {text!r}")
    return left, right


def parse_args(argv: list[str]) -> tuple[Config, str | None]:
    p = argparse.ArgumentParser(prog="checks.py", description="cni-migrate validation checks")
    p.add_argument("phase", choices=PHASES)
    p.add_argument("--cilium-cidr", required=True)
    p.add_argument("--cilium-namespace", default="kube-system")
    p.add_argument("--old-cni-daemonset", action="append", default=[])
    p.add_argument("--old-cni-selector", action="append", default=[], help="NS:SELECTOR")
    p.add_argument("--old-cni-deployment", action="append", default=[])
    p.add_argument("--avoid-cidr", action="append", default=[], help="CIDR=ORIGIN")
    p.add_argument("--probe-namespace", default=None)
    p.add_argument("--probe-service", default="cni-migrate-probe")
    p.add_argument("--probe-port", type=int, default=8080)
    p.add_argument("--node", action="append", default=[])
    p.add_argument("--cluster-domain", default="cluster.local")
    p.add_argument("--settle-seconds", type=float, default=0)
    p.add_argument("--wait-seconds", type=float, default=120)
    p.add_argument("--expect", choices=("cilium", "old"), default="cilium",
                   help="batch: which CNI the batch's probe pods must be on")
    p.add_argument("--all-pairs-up-to", type=int, default=60,
                   help="batch: test every probe pair when there are at most this many")
    p.add_argument("--attempts", type=int, default=3)
    p.add_argument("--retry-seconds", type=float, default=5)
    p.add_argument("--api", default=None, help="API base URL (tests); default: in-cluster")
    a = p.parse_args(argv)
    import os
    cfg = Config(
        phase=a.phase, cilium_cidr=a.cilium_cidr, cilium_namespace=a.cilium_namespace,
        old_daemonsets=a.old_cni_daemonset,
        old_selectors=[_pair(s, ":", "--old-cni-selector") for s in a.old_cni_selector],
        old_deployments=a.old_cni_deployment,
        avoid_cidrs=[_pair(s, "=", "--avoid-cidr") for s in a.avoid_cidr],
        probe_namespace=a.probe_namespace or os.environ.get("POD_NAMESPACE", "cni-migration"),
        probe_service=a.probe_service, probe_port=a.probe_port, nodes=a.node,
        cluster_domain=a.cluster_domain, settle_seconds=a.settle_seconds,
        wait_seconds=a.wait_seconds, expect=a.expect, all_pairs_up_to=a.all_pairs_up_to,
        attempts=max(1, a.attempts), retry_seconds=a.retry_seconds)
    return cfg, a.api


def main(argv: list[str] | None = None, out=None, **hooks) -> int:
    cfg, api_url = parse_args(sys.argv[1:] if argv is None else argv)
    out = out or sys.stdout
    started = time.time()
    results = Checks(kubeapi.Client(api_url), cfg, **hooks).run()
    print(f"checks {cfg.phase}: {time.time() - started:.1f}s", file=out)
    return report(cfg.phase, results, out)


if __name__ == "__main__":
    sys.exit(main())
