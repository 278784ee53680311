"""`cni-migrate translate` end to end, and selector/naming details."""
import json

from generator.calico.model import EntityRule, Policy, PolicySet, Rule, SourceRef
from generator.cli import main
from generator.translate import translate
from generator.translate.emit import dns_name
from generator.translate.selectors import label_selectors, to_dnf

POLICY = """\
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: allow-fe, namespace: prod}
spec:
  selector: app == 'web'
  ingress:
  - action: Allow
    protocol: TCP
    source: {selector: app == 'fe'}
    destination: {ports: [80, "8000:8080"]}
  - action: Deny
    source: {selector: app == 'fe'}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: odd}
spec:
  selector: app starts with 'we'
  types: [Ingress]
  ingress:
  - action: Allow
"""


def test_command_writes_objects_and_reports(tmp_path, capsys):
    (tmp_path / "p.yaml").write_text(POLICY)
    out, rep = tmp_path / "out", tmp_path / "r" / "report.json"
    rc = main(["translate", str(tmp_path / "p.yaml"), "--out", str(out), "--report", str(rep),
               "--cilium-version", "1.18"])
    assert rc == 0
    assert (out / "CiliumNetworkPolicy/prod/calico-np-allow-fe.yaml").is_file()
    data = json.loads(rep.read_text())
    by = {p["source"]["name"]: p for p in data["policies"]}
    assert by["allow-fe"]["fidelity"] == "exact"
    assert by["allow-fe"]["outputs"] == [{"kind": "CiliumNetworkPolicy", "namespace": "prod",
                                          "name": "calico-np-allow-fe"}]
    assert by["odd"]["fidelity"] == "untranslatable"
    assert by["odd"]["source"]["namespace"] is None
    assert "substring-selector" in {f["code"] for f in by["odd"]["findings"]}
    assert rep.with_suffix(".md").read_text().startswith("# Policy translation report")
    rc = main(["translate", str(tmp_path / "p.yaml"), "--out", str(out), "--report", str(rep),
               "--strict"])
    assert rc == 1


def test_command_input_errors_exit_2(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("kind: NetworkPolicy\napiVersion: projectcalico.org/v3\n"
                                       "metadata: {name: x, namespace: y}\n"
                                       "spec: {selector: \"a == \"}\n")
    rc = main(["translate", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "o"),
               "--report", str(tmp_path / "r.json")])
    assert rc == 2
    assert "bad.yaml" in capsys.readouterr().err
    rc = main(["translate", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "o"),
               "--report", str(tmp_path / "r.json"), "--cilium-version", "1.12"])
    assert rc == 2


def test_deterministic_output():
    ps = PolicySet(policies=[Policy(SourceRef("v3", "NetworkPolicy", "a", "x"), "x", "a",
                                    selector="app in {'b', 'a'} || tier == 'f'",
                                    ingress=(Rule("Allow", 0, source=EntityRule(
                                        selector="!has(x)")),))])
    a, b = translate(ps), translate(ps)
    assert a.objects == b.objects and a.report.to_json() == b.report.to_json()
    spec = a.objects[0]["specs"]
    assert len(spec) == 2          # `||` in the subject: one spec per alternative


def test_special_labels_and_negation():
    dnf = to_dnf("projectcalico.org/namespace == 'a' && !(app in {'x'}) && "
                 "projectcalico.org/serviceaccount == 'sa'")
    (c,) = dnf
    (labels, exprs), = label_selectors(c)
    assert dict(labels) == {"k8s:io.kubernetes.pod.namespace": "a",
                            "k8s:io.cilium.k8s.policy.serviceaccount": "sa"}
    assert exprs == (("app", "NotIn", ("x",)),)
    from generator.translate.selectors import Context
    (ns,) = to_dnf("team == 'blue'", Context("namespace"))
    assert ns[0][0] == "k8s:io.cilium.k8s.namespace.labels.team"


def test_dns_names():
    assert dns_name("calico", "np", "Web_App") != dns_name("calico", "np", "web-app")
    assert len(dns_name("calico", "x" * 300)) <= 253


def test_example_cluster_translates_exactly_and_verifies(root):
    """The kind-canal example (tiers, Log/Deny/Pass, a network set, KNPs with named ports):
    translated against its inventory, verify finds no difference on its real endpoints."""
    from generator.calico.reader import read_policies
    from generator.inventory.snapshot import load_snapshot
    from generator.verify.compare import verify
    from generator.yamlio import load_paths
    ex = root / "examples" / "kind-canal"
    inv = load_snapshot([str(ex)])
    files = [ex / f for f in ("globalnetworkpolicies.yaml", "globalnetworksets.yaml",
                              "networkpolicies.yaml", "tiers.yaml")]
    ps = read_policies(load_paths(files))
    t = translate(ps, cilium_version="1.18", inventory=inv)
    assert {p.fidelity for p in t.report.policies} <= {"exact", "approximate"}
    r = verify(ps, t.objects, inventory=inv, declared=t.report)
    assert not r.undeclared and not r.widening


def test_name_clash_never_drops_an_object():
    a = Policy(SourceRef("v3", "NetworkPolicy", "ns", "web_app"), "web_app", "ns",
               ingress=(Rule("Allow", 0),))
    b = Policy(SourceRef("v3", "NetworkPolicy", "ns", "web-app"), "web-app", "ns",
               ingress=(Rule("Deny", 0),))
    t = translate(PolicySet(policies=[a, b]))
    names = [o["metadata"]["name"] for o in t.objects if o["kind"] == "CiliumNetworkPolicy"]
    assert len(names) == 2 and len(set(names)) == 2


def test_command_with_inventory_and_helm_values(tmp_path, root):
    ex = root / "examples" / "kind-canal"
    out, rep = tmp_path / "out", tmp_path / "report.json"
    rc = main(["translate", str(ex / "globalnetworkpolicies.yaml"),
               str(ex / "globalnetworksets.yaml"), str(ex / "networkpolicies.yaml"),
               str(ex / "tiers.yaml"), "--from", str(ex), "--out", str(out),
               "--report", str(rep), "--cilium-version", "1.17"])
    assert rc == 0
    assert list((out / "CiliumCIDRGroup").glob("*.yaml"))
    assert list((out / "NetworkPolicy").rglob("*.yaml"))        # KNPs passed through
    assert "hubble" in (out / "helm-values.yaml").read_text()   # the Log rule


def test_same_bytes_whatever_the_hash_seed(tmp_path, root):
    import os
    import subprocess
    import sys
    ex = root / "examples" / "kind-canal"
    outs = []
    for seed in ("1", "2"):
        out = tmp_path / seed
        subprocess.run([sys.executable, "-m", "generator", "translate", str(ex), "--out",
                        str(out / "o"), "--report", str(out / "r.json")], check=True,
                       cwd=root, env={**os.environ, "PYTHONHASHSEED": seed},
                       stdout=subprocess.DEVNULL)
        outs.append({p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*"))
                     if p.is_file()})
    assert outs[0] == outs[1] and len(outs[0]) > 5


def test_a_file_without_kubernetes_objects_is_an_error_not_zero_objects(tmp_path, capsys):
    """A Helm values file that holds policies under a key (as in the corpus' wikimedia files)
    was accepted with "0 objects written", exit 0: the user believed it translated."""
    values = tmp_path / "values.yaml"
    values.write_text("GlobalNetworkPolicies:\n  web:\n    selector: all()\n    types: [Ingress]\n")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    for f, says in ((values, "a Helm values file? render the chart first"),
                    (empty, "the file is empty")):
        rc = main(["translate", str(f), "--out", str(tmp_path / "o"),
                   "--report", str(tmp_path / "r.json")])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1, err
        assert str(f) in err and "holds no Kubernetes object" in err and says in err
    assert not (tmp_path / "r.json").exists()


def test_an_empty_translation_writes_its_folder_and_verify_accepts_it(tmp_path, capsys):
    staged = tmp_path / "staged.yaml"
    staged.write_text("""\
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata: {name: trial}
spec:
  selector: all()
  types: [Ingress]
  ingress: [{action: Deny}]
""")
    out = tmp_path / "cilium"
    assert main(["translate", str(staged), "--out", str(out), "--report",
                 str(tmp_path / "r.json")]) == 0
    assert out.is_dir() and not any(out.iterdir())
    capsys.readouterr()
    # a staged policy enforces nothing: Calico and the empty Cilium side agree on every flow
    assert main(["verify", str(staged), "--cilium", str(out)]) == 0
    assert "0 differences" in capsys.readouterr().out
    # a folder that does not exist is still an error, named
    assert main(["verify", str(staged), "--cilium", str(tmp_path / "missing")]) == 2


HEP = """\
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node1-eth0, labels: {role: edge}}
spec: {interfaceName: eth0, node: node1}
"""


def test_a_host_endpoint_no_policy_selects_is_reported_and_verify_sees_the_widening(
        tmp_path, capsys):
    """Calico default-denies such a host (failsafe ports apart); Cilium gets nothing for it.
    The report said nothing and verify judged no host of that node."""
    src = tmp_path / "hep.yaml"
    src.write_text(HEP)
    out, rep = tmp_path / "cilium", tmp_path / "r.json"
    assert main(["translate", str(src), "--out", str(out), "--report", str(rep)]) == 0
    report = json.loads(rep.read_text())["policies"]
    assert [(p["source"]["kind"], p["source"]["name"], p["fidelity"],
             [f["code"] for f in p["findings"]]) for p in report] == [
        ("HostEndpoint", "node1-eth0", "untranslatable", ["hostendpoint-unselected"])]
    capsys.readouterr()
    assert main(["verify", str(src), "--cilium", str(out)]) == 1       # undeclared widening
    assert "calico: deny by HostEndpoint node1-eth0 default: deny" in capsys.readouterr().out
    assert main(["verify", str(src), "--cilium", str(out), "--report", str(rep)]) == 0
    # selected by a policy: no such finding
    src.write_text(HEP + """---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: edge}
spec:
  selector: role == 'edge'
  types: [Ingress]
  ingress: [{action: Allow, protocol: TCP, destination: {ports: [22]}}]
""")
    assert main(["translate", str(src), "--out", str(out), "--report", str(rep)]) == 0
    codes = [f["code"] for p in json.loads(rep.read_text())["policies"] for f in p["findings"]]
    assert "hostendpoint-unselected" not in codes


def test_host_default_deny_emits_calicos_default_deny_and_verify_finds_it_exact(
        tmp_path, capsys):
    src = tmp_path / "hep.yaml"
    src.write_text(HEP)
    out, rep = tmp_path / "cilium", tmp_path / "r.json"
    assert main(["translate", str(src), "--out", str(out), "--report", str(rep),
                 "--host-default-deny"]) == 0
    [entry] = json.loads(rep.read_text())["policies"]
    assert entry["fidelity"] == "exact" and entry["outputs"] == [{
        "kind": "CiliumClusterwideNetworkPolicy", "namespace": None,
        "name": "calico-hep-default-deny-node1-eth0"}]
    import yaml
    obj = yaml.safe_load((out / "CiliumClusterwideNetworkPolicy" /
                          "calico-hep-default-deny-node1-eth0.yaml").read_text())
    assert obj["spec"]["nodeSelector"] == {"matchLabels": {"kubernetes.io/hostname": "node1"}}
    ingress = {(p["protocol"], p["port"]) for p in obj["spec"]["ingress"][0]["toPorts"][0]["ports"]}
    assert ("TCP", "22") in ingress and ("TCP", "6443") in ingress and ("TCP", "53") not in ingress
    assert yaml.safe_load((out / "helm-values.yaml").read_text())["hostFirewall"] == {
        "enabled": True}
    capsys.readouterr()
    # every flow of that host judged the same by Felix and by Cilium, failsafe ports included
    assert main(["verify", str(src), "--cilium", str(out)]) == 0
    assert " 0 differences" in capsys.readouterr().out
