"""Validation checks against the stand-in API server; the batch probes talk real HTTP to small
netexec look-alikes bound on loopback addresses (127.0.0.2, .3, ...: one per probe pod)."""
from __future__ import annotations

import io
import json
import socket
import threading
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fakekube import FakeKube, node, pdb, pod
from generator.runner import checks

CIDR = "127.0.0.0/24"         # the probes live on loopback addresses: "Cilium" addresses here
SVC_IP = "127.0.1.1"          # the probe Service ClusterIP, routed by the fakes to a probe
FQDN = "cni-migrate-probe.cni-migration.svc.cluster.local"


class Netexec:
    """Just enough of agnhost netexec: /hostname and /dial?host=&port=&request=hostname."""

    def __init__(self, ip: str, port: int, hostname: str, net: "Net"):
        self.hostname, self.net, self.ip = hostname, net, ip
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                if u.path == "/hostname":
                    body, code = outer.hostname.encode(), 200
                elif u.path == "/dial":
                    q = dict(urllib.parse.parse_qsl(u.query))
                    code, data = outer.dial(q["host"], int(q["port"]))
                    body = json.dumps(data).encode()
                else:
                    body, code = b"not found", 404
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer((ip, port), H)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def dial(self, host: str, port: int):
        target = self.net.dns.get(host, host)
        target = self.net.service.get(target, target)
        if (self.ip, target) in self.net.blocked or target is None:
            return 417, {"responses": [], "errors": [f"dial {host}: i/o timeout"]}
        try:
            with urllib.request.urlopen(f"http://{target}:{port}/hostname", timeout=2) as r:
                return 200, {"responses": [r.read().decode()], "errors": []}
        except OSError as e:
            return 417, {"responses": [], "errors": [str(e)]}


class Net:
    def __init__(self):
        self.dns: dict[str, str] = {FQDN: SVC_IP}
        self.service: dict[str, str] = {}
        self.blocked: set[tuple[str, str]] = set()
        self.servers: list[Netexec] = []


def free_port(ips) -> int:
    for _ in range(20):
        s = socket.socket()
        s.bind((ips[0], 0))
        port = s.getsockname()[1]
        s.close()
        try:
            for ip in ips:
                t = socket.socket()
                t.bind((ip, port))
                t.close()
            return port
        except OSError:
            continue
    pytest.skip("no common free port on loopback addresses")


@pytest.fixture
def kube():
    with FakeKube() as k:
        yield k


@pytest.fixture
def probes(kube):
    """Three nodes, a Ready probe pod on each (real netexec look-alikes), the probe Service."""
    net = Net()
    ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    port = free_port(ips)
    for i, ip in enumerate(ips, 1):
        name = f"cni-migrate-probe-{i}"
        kube.add(node(f"w{i}"))
        kube.add(pod(name, "cni-migration", node_name=f"w{i}", ip=ip, owner_kind="DaemonSet",
                     labels={"app.kubernetes.io/name": "cni-migrate-probe"}))
        net.servers.append(Netexec(ip, port, name, net))
    net.service[SVC_IP] = ips[0]
    kube.add({"apiVersion": "v1", "kind": "Service",
              "metadata": {"name": "cni-migrate-probe", "namespace": "cni-migration"},
              "spec": {"clusterIP": SVC_IP, "ports": [{"port": port}]}})
    yield net, port
    for s in net.servers:
        s.server.shutdown()
        s.server.server_close()


def run_main(kube, argv, **hooks) -> tuple[int, str]:
    out = io.StringIO()
    hooks.setdefault("sleep", lambda seconds: None)
    rc = checks.main([*argv, "--api", kube.url], out=out, **hooks)
    return rc, out.getvalue()


def parse_report(text: str) -> tuple[dict, ET.Element]:
    rec = next(json.loads(line)["cni-migrate-checks"] for line in text.splitlines()
               if line.startswith('{"cni-migrate-checks"'))
    xml = text.split("--- junit ---\n", 1)[1].split("\n--- end junit ---", 1)[0]
    return rec, ET.fromstring(xml)


def by_name(rec: dict) -> dict:
    return {r["name"]: r for r in rec["results"]}


def batch_argv(port: int, *nodes: str) -> list[str]:
    argv = ["batch", "--cilium-cidr", CIDR, "--probe-namespace", "cni-migration",
            "--probe-port", str(port), "--attempts", "2", "--retry-seconds", "0"]
    for n in nodes:
        argv += ["--node", n]
    return argv


def test_batch_probes_pass(kube, probes):
    net, port = probes
    rc, text = run_main(kube, batch_argv(port, "w2"), resolver=lambda name: ["10.96.0.1"])
    rec, suite = parse_report(text)
    assert rc == 0, text
    r = by_name(rec)
    assert r["probe-direct"]["ok"] and r["probe-direct"]["message"].startswith("3/3")
    assert r["probe-mesh"]["ok"] and r["probe-mesh"]["message"].startswith("6/6")
    assert r["probe-service-dns"]["ok"] and r["probe-service-ip"]["ok"]
    assert r["probe-service-dns"]["message"].startswith("1/1")      # from the batch node
    assert r["api-server"]["ok"] and r["dns"]["ok"]
    assert suite.get("tests") == str(len(rec["results"])) and suite.get("failures") == "0"
    # in a big cluster only the pairs involving the batch's nodes: 2 * 2 with w2
    rc, text = run_main(kube, [*batch_argv(port, "w2"), "--all-pairs-up-to", "2"],
                        resolver=lambda name: ["10.96.0.1"])
    assert rc == 0 and by_name(parse_report(text)[0])["probe-mesh"]["message"].startswith("4/4")


def test_direct_probe_checks_the_answering_pod(kube, probes):
    net, port = probes
    net.servers[2].hostname = "someone-else"
    rc, text = run_main(kube, batch_argv(port), resolver=lambda name: ["10.96.0.1"])
    r = by_name(parse_report(text)[0])
    assert rc == 1
    assert r["probe-direct"]["details"] == [
        "-> cni-migrate-probe-3 (w3, 127.0.0.4): answered 'someone-else', "
        "expected 'cni-migrate-probe-3'"]
    assert "expected cni-migrate-probe-3" in "\n".join(r["probe-mesh"]["details"])


def test_batch_probes_fail_names_the_broken_pair(kube, probes):
    net, port = probes
    net.blocked.add(("127.0.0.3", "127.0.0.4"))
    rc, text = run_main(kube, batch_argv(port), resolver=lambda name: ["10.96.0.1"])
    rec, suite = parse_report(text)
    assert rc == 1
    mesh = by_name(rec)["probe-mesh"]
    assert not mesh["ok"] and mesh["message"].startswith("5/6")
    assert mesh["details"] == ["cni-migrate-probe-2 (w2) -> cni-migrate-probe-3 (w3): "
                               "dial 127.0.0.4: i/o timeout"]
    failures = suite.findall("testcase/failure")
    assert [f.get("message") for f in failures] == [mesh["message"]]
    assert "FAIL probe-mesh" in text


def test_batch_requires_cilium_address_and_dns(kube, probes):
    net, port = probes
    net.dns.pop(FQDN)

    def no_dns(name):
        raise socket.gaierror("Name or service not known")
    rc, text = run_main(kube, ["batch", "--cilium-cidr", "10.100.0.0/16", "--node", "w1",
                               "--probe-namespace", "cni-migration", "--probe-port", str(port),
                               "--attempts", "1"], resolver=no_dns)
    rec, _ = parse_report(text)
    r = by_name(rec)
    assert rc == 1
    assert "outside the Cilium pod CIDR 10.100.0.0/16" in r["probes-ready"]["details"][0]
    assert not r["probe-service-dns"]["ok"] and r["probe-service-ip"]["ok"]
    assert not r["dns"]["ok"] and "Name or service not known" in r["dns"]["message"]


def test_batch_without_probe_pods_fails(kube):
    kube.add(node("w1"))
    rc, text = run_main(kube, ["batch", "--cilium-cidr", CIDR, "--node", "w1",
                               "--probe-namespace", "cni-migration"],
                        resolver=lambda n: ["10.96.0.1"])
    rec, _ = parse_report(text)
    assert rc == 1 and by_name(rec)["probes-ready"]["details"] == ["no Ready probe pod on node w1"]


def _calico(kube, ready=3, desired=3):
    kube.add({"apiVersion": "apps/v1", "kind": "DaemonSet",
              "metadata": {"name": "calico-node", "namespace": "kube-system"},
              "spec": {"selector": {"matchLabels": {"k8s-app": "calico-node"}}},
              "status": {"desiredNumberScheduled": desired, "numberReady": ready,
                         "numberUnavailable": desired - ready}})


PRE = ["preflight", "--cilium-cidr", "10.200.0.0/16", "--old-cni-daemonset",
       "kube-system/calico-node", "--avoid-cidr", "192.168.0.0/16=IPPool default-ipv4",
       "--avoid-cidr", "10.96.0.0/12=service CIDR"]


def test_preflight_pass(kube):
    for i in range(3):
        kube.add(node(f"w{i}", ip=f"172.16.0.{i + 1}", pod_cidr=f"192.168.{i}.0/24"))
    _calico(kube)
    kube.add(pdb("web", "default", {"app": "web"}, 1))
    rc, text = run_main(kube, PRE)
    rec, suite = parse_report(text)
    assert rc == 0, text
    assert [r["name"] for r in rec["results"]] == [
        "nodes-ready", "old-cni-daemonset kube-system/calico-node", "pdbs-allow-disruption",
        "cidr-clear"]
    assert len(suite.findall("testcase")) == 4 and not suite.findall("testcase/failure")


def test_preflight_failures_are_named(kube):
    kube.add(node("w0", pod_cidr="10.200.3.0/24"))
    kube.add(node("w1", ready=False, ip="10.200.9.9"))
    _calico(kube, ready=1, desired=2)
    kube.add(pdb("db-quorum", "prod", {"app": "db"}, 0))
    rc, text = run_main(kube, [*PRE, "--avoid-cidr", "10.0.0.0/8=Calico IPPool wide"])
    rec, suite = parse_report(text)
    r = by_name(rec)
    assert rc == 1
    assert r["nodes-ready"]["details"] == ["node w1 is not Ready"]
    assert not r["old-cni-daemonset kube-system/calico-node"]["ok"]
    assert "prod/db-quorum" in r["pdbs-allow-disruption"]["details"][0]
    clash = "\n".join(r["cidr-clear"]["details"])
    assert "10.0.0.0/8 (Calico IPPool wide)" in clash and "node w0 spec.podCIDRs" in clash
    assert "10.200.9.9 (node w1 InternalIP)" in clash
    assert suite.get("failures") == "4"


def _cilium(kube, agents=3, operator_ready=1):
    kube.add({"apiVersion": "apps/v1", "kind": "DaemonSet",
              "metadata": {"name": "cilium", "namespace": "kube-system"},
              "status": {"desiredNumberScheduled": 3, "numberReady": agents}})
    kube.add({"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "cilium-operator", "namespace": "kube-system"},
              "spec": {"replicas": 1}, "status": {"readyReplicas": operator_ready}})


POST = ["post-install", "--cilium-cidr", "10.100.0.0/16",
        "--old-cni-selector", "kube-system:k8s-app=calico-node", "--settle-seconds", "30"]


def _cluster_for_post_install(kube):
    for i in range(3):
        kube.add(node(f"w{i}"))
        kube.add(pod(f"calico-node-{i}", "kube-system", node_name=f"w{i}", host_network=True,
                     labels={"k8s-app": "calico-node"}, owner_kind="DaemonSet"))
    for i in range(2):
        kube.add(pod(f"coredns-{i}", "kube-system", node_name=f"w{i}", ip=f"10.244.{i}.2",
                     labels={"k8s-app": "kube-dns"}, restarts=1))


def test_post_install_pass(kube):
    _cluster_for_post_install(kube)
    _cilium(kube)
    slept = []
    rc, text = run_main(kube, POST, sleep=slept.append)
    assert rc == 0, text
    assert slept == [30.0]


def test_post_install_detects_restarts_and_missing_old_cni(kube):
    _cluster_for_post_install(kube)
    _cilium(kube, agents=2, operator_ready=0)
    kube.remove("pods", "calico-node-2", "kube-system")

    def operator_meddles(_seconds):
        kube.obj("pods", "coredns-0", "kube-system")["status"]["containerStatuses"][0][
            "restartCount"] = 3
        kube.remove("pods", "coredns-1", "kube-system")
    rc, text = run_main(kube, POST, sleep=operator_meddles)
    rec, _ = parse_report(text)
    r = by_name(rec)
    assert rc == 1
    assert r["cilium-daemonset"]["message"] == "2/3 agents Ready" and not r["cilium-operator"]["ok"]
    assert r["old-cni-on-every-node kube-system:k8s-app=calico-node"]["details"] == [
        "no Ready old-CNI pod on node w2"]
    details = "\n".join(r["coredns-stable"]["details"])
    assert "coredns-0 restarted 2 time(s)" in details
    assert "coredns-1 was deleted" in details and "unmanagedPodWatcher" in details


def test_final_checks(kube):
    kube.add(pod("web", "default", node_name="w1", ip="10.100.1.5"))
    kube.add(pod("node-exporter", "monitoring", node_name="w1", host_network=True))
    kube.add(pod("done-job", "default", node_name="w1", ip="10.244.1.9", phase="Succeeded"))
    kube.add({"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "cilium-config", "namespace": "kube-system"},
              "data": {"enable-policy": "default"}})
    argv = ["final", "--cilium-cidr", "10.100.0.0/16"]
    rc, text = run_main(kube, argv)
    assert rc == 0, text

    kube.add(pod("goldpinger", "monitoring", node_name="w2", ip="10.244.2.7",
                 owner_kind="DaemonSet"))
    kube.obj("configmaps", "cilium-config", "kube-system")["data"]["enable-policy"] = "never"
    rc, text = run_main(kube, argv)
    rec, _ = parse_report(text)
    r = by_name(rec)
    assert rc == 1
    assert r["pods-on-cilium"]["details"] == [
        "pod monitoring/goldpinger on node w2 has 10.244.2.7"]
    assert "Cilium enforces no policy" in r["policy-enforcement"]["message"]


def test_removal_checks(kube):
    argv = ["removal", "--cilium-cidr", "10.100.0.0/16",
            "--old-cni-daemonset", "kube-flannel/kube-flannel-ds",
            "--old-cni-selector", "kube-flannel:app=flannel"]
    rc, text = run_main(kube, argv)
    assert rc == 0, text
    kube.add(pod("kube-flannel-ds-x", "kube-flannel", node_name="w1", labels={"app": "flannel"},
                 host_network=True, owner_kind="DaemonSet"))
    rc, text = run_main(kube, argv)
    rec, _ = parse_report(text)
    assert rc == 1
    assert by_name(rec)["old-cni-removed"]["details"] == [
        "pod kube-flannel/kube-flannel-ds-x (app=flannel) on node w1"]


def test_forbidden_api_call_is_a_failed_check(kube):
    kube.forbid("list", "nodes")
    rc, text = run_main(kube, ["preflight", "--cilium-cidr", "10.100.0.0/16"])
    rec, _ = parse_report(text)
    assert rc == 1
    assert "HTTP 403" in by_name(rec)["nodes-ready"]["message"]


def test_junit_escapes_and_counts():
    results = [checks.Result("a", True, "fine"),
               checks.Result("b <&>", False, 'bad "quote"', ["x < y"])]
    suite = ET.fromstring(checks.to_junit("final", results))
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    fail = suite.find("testcase/failure")
    assert fail.get("message") == 'bad "quote"' and fail.text == "x < y"
    assert checks.to_json("final", results)["ok"] is False


def test_batch_waits_for_recreated_probe_pods(kube, probes):
    net, port = probes
    probe = kube.obj("pods", "cni-migrate-probe-2", "cni-migration")
    probe["status"]["conditions"][0]["status"] = "False"      # just re-created by the runner
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        if len(slept) == 3:
            probe["status"]["conditions"][0]["status"] = "True"
    rc, text = run_main(kube, [*batch_argv(port, "w2"), "--retry-seconds", "5",
                               "--wait-seconds", "60"], sleep=sleep,
                        resolver=lambda n: ["10.96.0.1"])
    assert rc == 0, text
    assert slept == [5.0, 5.0, 5.0]

    probe["status"]["conditions"][0]["status"] = "False"      # and never comes back
    slept.clear()
    rc, text = run_main(kube, [*batch_argv(port, "w2"), "--retry-seconds", "5",
                               "--wait-seconds", "20"], sleep=lambda s: slept.append(s),
                        resolver=lambda n: ["10.96.0.1"])
    assert rc == 1 and "no Ready probe pod on node w2" in text
    assert len(slept) >= 3


def test_batch_after_rollback_expects_old_addresses(kube, probes):
    net, port = probes
    argv = [*batch_argv(port, "w1"), "--expect", "old"]
    rc, text = run_main(kube, argv, resolver=lambda n: ["10.96.0.1"])
    assert rc == 1 and "127.0.0.2, inside the Cilium pod CIDR" in text
    argv[argv.index("--cilium-cidr") + 1] = "10.100.0.0/16"
    rc, text = run_main(kube, argv, resolver=lambda n: ["10.96.0.1"])
    assert rc == 0, text
