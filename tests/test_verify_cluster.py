"""verify over a real snapshot: inventory universe, probe Jobs, the per-wave enforcement gap,
and the `cni-migrate verify` command."""
import json

import pytest
import yaml

from generator.calico.reader import read_policies
from generator.cli import main
from generator.inventory.snapshot import load_snapshot
from generator.plan.model import Options
from generator.plan.planner import make_plan
from generator.render.model import STEP_GATE
from generator.verify.compare import verify
from generator.verify.gap import enforcement_gap, safer_sequence
from generator.verify.probes import pick_probes, probe_items, probe_matrix_markdown
from generator.verify.universe import build_universe
from snapshots import make_snapshot

POLICY = {"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
          "metadata": {"name": "db", "namespace": "shop"},
          "spec": {"selector": "app == 'db'", "types": ["Ingress"], "ingress": [
              {"action": "Deny", "source": {"selector": "tier == 'frontend'"},
               "protocol": "TCP", "destination": {"ports": [22]}},
              {"action": "Allow", "protocol": "TCP", "source": {"selector": "app == 'web'"},
               "destination": {"ports": [5432, 22]}}]}}
GOOD = {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "db", "namespace": "shop"},
        "spec": {"endpointSelector": {"matchLabels": {"app": "db"}},
                 "ingressDeny": [{"fromEndpoints": [{"matchLabels": {"tier": "frontend"}}],
                                  "toPorts": [{"ports": [{"port": "22", "protocol": "TCP"}]}]}],
                 "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "web"}}],
                              "toPorts": [{"ports": [{"port": "5432", "protocol": "TCP"},
                                                     {"port": "22", "protocol": "TCP"}]}]}]}}


def _db_pods(nodes):
    return [{"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": f"db-{i}", "namespace": "shop",
                          "labels": {"app": "db", "controller-revision-hash": f"db-{i}"}},
             "spec": {"nodeName": n, "serviceAccountName": "default",
                      "containers": [{"name": "pg", "image": "postgres",
                                      "ports": [{"name": "pg", "containerPort": 5432}]}]},
             "status": {"phase": "Running", "podIP": f"10.244.{i + 1}.50",
                        "podIPs": [{"ip": f"10.244.{i + 1}.50"}]}}
            for i, n in enumerate(nodes)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, shared):
    tmp = tmp_path_factory.mktemp("snap")
    snap = make_snapshot(tmp, "canal", nodes=4, pods_per_node=2,
                         extra_objects=_db_pods(["worker-1", "worker-2"]) + [POLICY])
    inv = load_snapshot([str(snap)])
    return snap, inv, read_policies(list(inv.policy_objects))


def test_inventory_universe_groups_identities_with_weights(cluster):
    _, inv, ps = cluster
    uni = build_universe(ps, [GOOD], inventory=inv)
    web = [e for e in uni.endpoints if e.kind == "pod" and dict(e.labels).get("app") == "web"]
    assert len(web) == 1 and web[0].weight == sum(1 for p in inv.pods if p.labels.get("app") == "web")
    hosts = [e for e in uni.endpoints if e.kind == "host"]
    assert sum(h.weight for h in hosts) == len(inv.nodes)   # no policy tells nodes apart
    # two identities (controller-revision-hash differs) that no selector can tell apart
    db = [e for e in uni.endpoints if dict(e.labels).get("app") == "db"]
    assert len(db) == 1 and db[0].weight == 2
    assert uni.kind == "inventory" and "classes no policy tells apart" in uni.notes[0]
    # a policy that reads the label splits the class
    split = dict(GOOD, spec=dict(GOOD["spec"], endpointSelector={"matchLabels": {
        "app": "db", "controller-revision-hash": "db-0"}}))
    uni2 = build_universe(ps, [split], inventory=inv)
    assert len([e for e in uni2.endpoints if dict(e.labels).get("app") == "db"]) == 2
    # a policy naming the local host makes the node of a pod matter
    hosted = dict(GOOD, spec=dict(GOOD["spec"], ingress=[{"fromEntities": ["host"]}]))
    uni3 = build_universe(ps, [hosted], inventory=inv)
    assert len([e for e in uni3.endpoints if e.kind == "host"]) >= 3


def test_verify_with_inventory(cluster):
    _, inv, ps = cluster
    r = verify(ps, [GOOD], inventory=inv)
    assert r.ok and r.universe == "inventory" and r.flows_judged > 0
    broken = json.loads(json.dumps(GOOD))
    del broken["spec"]["ingressDeny"]
    r2 = verify(ps, [broken], inventory=inv)
    assert r2.widening and not r2.ok
    d = r2.widening[0]
    assert d.flow.port == 22 and d.flow.src.namespace == "shop"
    assert dict(d.flow.src.labels).get("tier") == "frontend" and d.weight >= 1


def _plan(inv):
    return make_plan(inv, Options())


def test_enforcement_gap_per_wave(cluster):
    _, inv, ps = cluster
    plan = _plan(inv)
    gaps = enforcement_gap(plan, inv, ps)
    assert gaps and [g.wave for g in gaps] == [w.key for w in plan.waves if w.nodes]
    # cumulative: the last node wave has every db pod unenforced
    last = gaps[-1]
    assert last.unenforced_pods == last.governed_pods == 2
    assert last.namespaces == ["shop"]
    assert last.policies[0].policy == "NetworkPolicy shop/db"
    assert "| NetworkPolicy shop/db | Ingress |" in last.markdown()
    for g in gaps:
        on = set(g.switched_nodes)
        assert g.unenforced_pods == sum(1 for n in ("worker-1", "worker-2") if n in on)
    from generator.verify.gap import wave_sections
    sections = wave_sections(plan, inv, ps)
    assert list(sections) == [g.wave for g in gaps]
    assert "Safer sequence" in sections[gaps[0].wave]
    seq = safer_sequence(plan, inv, ps)
    assert "policy-audit-mode" in seq and "| 1 |" in seq


def test_probe_flows_and_items(cluster):
    _, inv, ps = cluster
    probes = pick_probes(ps, inv)
    assert probes
    expected = {(dict(p.client.labels).get("tier"), p.port): p.expected for p in probes
                if dict(p.server.labels).get("app") == "db"}
    assert expected.get(("frontend", 22)) == "deny"
    assert expected.get(("frontend", 5432)) == "allow"
    md = probe_matrix_markdown(probes)
    assert md.startswith("| probe | client | server |") and "**deny**" in md

    plan = _plan(inv)
    items = probe_items(ps, inv, plan, "baseline")
    kinds = [i.obj["kind"] for i in items]
    assert kinds.count("Job") == 1 and "ConfigMap" in kinds and "ServiceAccount" in kinds
    job = next(i for i in items if i.obj["kind"] == "Job")
    assert job.step == STEP_GATE
    pod_spec = job.obj["spec"]["template"]["spec"]
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    for role in (i.obj for i in items if i.obj["kind"] == "Role"):
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"]
    cm = next(i.obj for i in items if i.obj["kind"] == "ConfigMap")
    pods = [json.loads(v) for k, v in cm["data"].items() if k.endswith(".yaml")]
    assert pods
    for pod in pods:
        assert "controller-revision-hash" not in pod["metadata"]["labels"]
        assert pod["metadata"]["ownerReferences"][0]["controller"] is True
        for c in pod["spec"]["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"]
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert sc["seccompProfile"]["type"] == "RuntimeDefault"
            assert "readinessProbe" in c
    rows = cm["data"]["matrix.tsv"].splitlines()
    assert len(rows) == len(probes)
    assert "agnhost connect" in cm["data"]["probe.sh"] and "JUnit" in cm["data"]["probe.sh"]
    again = probe_items(ps, inv, plan, "baseline")
    assert [i.obj for i in again] == [i.obj for i in items]       # deterministic
    enforced = probe_items(ps, inv, plan, "enforced")
    assert next(i for i in enforced if i.obj["kind"] == "Job").obj["metadata"]["name"] != \
        job.obj["metadata"]["name"]


def test_probe_script_is_valid_shell(cluster, tmp_path):
    import shutil
    import subprocess
    _, inv, ps = cluster
    items = probe_items(ps, inv, _plan(inv), "enforced")
    script = next(i.obj for i in items if i.obj["kind"] == "ConfigMap")["data"]["probe.sh"]
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no sh")
    f = tmp_path / "probe.sh"
    f.write_text(script)
    assert subprocess.run([sh, "-n", str(f)], capture_output=True).returncode == 0


def _write(path, objs):
    path.write_text(yaml.safe_dump_all(objs))
    return str(path)


def test_command_exit_codes(cluster, tmp_path, capsys):
    src = _write(tmp_path / "calico.yaml", [POLICY])
    good = _write(tmp_path / "good.yaml", [GOOD])
    broken_obj = json.loads(json.dumps(GOOD))
    del broken_obj["spec"]["ingressDeny"]
    broken = _write(tmp_path / "broken.yaml", [broken_obj])
    assert main(["verify", src, "--cilium", good]) == 0
    out = tmp_path / "r.json"
    md = tmp_path / "r.md"
    assert main(["verify", src, "--cilium", broken, "--json", str(out),
                 "--markdown", str(md)]) == 1
    text = capsys.readouterr().out
    assert "WIDENING UNDECLARED" in text and "tier=frontend" in text
    assert json.loads(out.read_text())["widening"] > 0
    assert "| **undeclared** |" in md.read_text()
    report = tmp_path / "fidelity.json"
    report.write_text(json.dumps({"policies": [{"source": {
        "apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy", "namespace": "shop",
        "name": "db"}, "fidelity": "approximate", "findings": []}]}))
    assert main(["verify", src, "--cilium", broken, "--report", str(report)]) == 0
    assert main(["verify", src]) == 2                       # no --cilium, no snapshot
    assert main(["verify", src, "--cilium", str(tmp_path / "missing")]) == 2
    snap = cluster[0]
    assert main(["verify", src, "--cilium", good, "--from", str(snap)]) == 0
    assert "(inventory)" in capsys.readouterr().out


def test_command_from_snapshot_uses_the_translator(cluster, tmp_path, capsys):
    snap = cluster[0]
    md = tmp_path / "pr.md"
    rc = main(["verify", "--from", str(snap), "--markdown", str(md)])
    out = capsys.readouterr().out
    assert "(inventory)" in out and "flows judged" in out
    assert rc in (0, 1) and (rc == 0) == ("0 undeclared" in out)
    assert md.read_text().startswith("### Policy equivalence")


FAKE_KUBECTL = r'''#!/usr/bin/env python3
# stand-in for kubectl: records calls, answers like the API server, decides connections
import hashlib, os, sys
args = sys.argv[1:]
log = open(os.environ["FAKE_LOG"], "a")
log.write(" ".join(args) + "\n")
def ip(name):
    return "10.9.0.%d" % (int(hashlib.sha256(name.encode()).hexdigest(), 16) % 250 + 2)
if args[2:4] == ["create", "configmap"]:
    print("uid-" + args[1], end="")
elif args[2:4] == ["create", "-f"]:
    sys.stdin.read()
elif args[2:3] == ["get"]:
    name, path = args[4], args[-1]
    print({"{.status.podIP}": ip(name), "{.status.phase}": "Running",
           "{.spec.containers[0].name}": "probe-x"}[path.split("=", 1)[-1].strip("'")], end="")
elif args[2:3] == ["exec"]:
    cpod, addr = args[3], args[args.index("connect") + 1]
    host, port = addr.rsplit(":", 1)
    for row in open(os.path.join(os.environ["PROBE_DIR"], "matrix.tsv")):
        pid, cns, cp, sns, sp, p, expect = row.split()
        if cp == cpod and p == port and ip(sp) == host:
            want = expect if os.environ.get("FAKE_MODE") == "match" else "allow"
            if want == "allow":
                sys.exit(0)
            print("TIMEOUT"); sys.exit(1)
    print("OTHER: no such probe"); sys.exit(1)
'''


def test_probe_script_runs_against_a_stand_in_kubectl(cluster, tmp_path):
    import os
    import shutil
    import subprocess
    if shutil.which("sh") is None:
        pytest.skip("no sh")
    _, inv, ps = cluster
    items = probe_items(ps, inv, _plan(inv), "enforced")
    data = next(i.obj for i in items if i.obj["kind"] == "ConfigMap")["data"]
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    for k, v in data.items():
        (probe_dir / k).write_text(v)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(FAKE_KUBECTL)
    (bin_dir / "kubectl").chmod(0o755)
    (bin_dir / "sleep").write_text("#!/bin/sh\n")
    (bin_dir / "sleep").chmod(0o755)
    log = tmp_path / "calls.log"
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", PROBE_DIR=str(probe_dir),
               PROBE_OUT=str(tmp_path / "out"), FAKE_LOG=str(log))

    def run(mode):
        return subprocess.run(["sh", str(probe_dir / "probe.sh"), "enforced", "owner-x"],
                              env=dict(env, FAKE_MODE=mode), capture_output=True, text=True,
                              timeout=60)
    ok = run("match")
    assert ok.returncode == 0, ok.stderr
    total = len(data["matrix.tsv"].splitlines())
    assert f"all {total} probes match" in ok.stdout
    body = ok.stdout.split("--- JSON ---\n")[1].split("--- JUnit ---")[0]
    result = json.loads(body)
    assert result["total"] == total and result["failed"] == 0
    assert "<testsuite" in ok.stdout and "<failure" not in ok.stdout
    calls = log.read_text()
    assert "delete configmap owner-x" in calls            # cleaned up (trap on exit)
    bad = run("allow-all")                                 # the cluster allows a deny probe
    assert bad.returncode == 1
    assert "<failure message=\"got allow\"/>" in bad.stdout
