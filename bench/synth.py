"""Deterministic synthetic clusters for the benchmark (issue: Scale).

    python bench/synth.py --size S --out /tmp/synth-S

Writes a snapshot directory as `kubectl get -o yaml` would: a Canal cluster with nodes in zones,
namespaces, pods with owners and named ports, service accounts, services, PDBs, and Calico +
Kubernetes policies of realistic shapes (tiers, orders, deny-then-allow, Pass, network sets,
namespace selectors, port ranges). Seeded: the same size gives the same bytes.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from generator.yamlio import dump  # noqa: E402

SIZES = {  # nodes, pods, calico policies (Kubernetes NetworkPolicies come on top: ~1/5)
    "S": (20, 500, 100),
    "M": (500, 5_000, 2_000),
    "L": (5_000, 50_000, 20_000),
}
ZONES = ("zone-a", "zone-b", "zone-c")
APPS = ("web", "api", "worker", "db", "cache", "queue", "auth", "search", "billing", "report")
TIERS = (("security", 100), ("platform", 200), ("application", 500))


def pod_net(n_nodes: int) -> tuple[int, str]:
    """(second octet of the first node's /24, cluster pod CIDR). 10.244.0.0/14 holds 1,024
    node /24s; size L (5,000 nodes) needs a /11 (10.64.0.0/11, clear of services 10.96/12)."""
    return (244, "10.244.0.0/14") if n_nodes <= 1024 else (64, "10.64.0.0/11")


def lst(items: list[dict]) -> dict:
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}


def nodes(rng: random.Random, n: int) -> list[dict]:
    out = []
    base = pod_net(n)[0]
    for i in range(n):
        cp = i < 3
        name = f"cp-{i}" if cp else f"node-{i:05d}"
        labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                  "topology.kubernetes.io/zone": ZONES[i % len(ZONES)]}
        if cp:
            labels["node-role.kubernetes.io/control-plane"] = ""
        out.append({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels},
            "spec": {"podCIDR": f"10.{base + i // 256}.{i % 256}.0/24",
                     "podCIDRs": [f"10.{base + i // 256}.{i % 256}.0/24"]},
            "status": {"addresses": [{"type": "InternalIP",
                                      "address": f"172.{16 + i // 65536}.{(i // 256) % 256}.{i % 256}"},
                                     {"type": "Hostname", "address": name}],
                       "conditions": [{"type": "Ready", "status": "True"}]},
        })
    return out


def build(size: str, seed: int = 7) -> dict[str, dict]:
    n_nodes, n_pods, n_pol = SIZES[size]
    rng = random.Random(f"{seed}-{size}")
    node_objs = nodes(rng, n_nodes)
    workers = [n["metadata"]["name"] for n in node_objs[3:]] or [node_objs[0]["metadata"]["name"]]
    n_ns = max(4, n_pods // 50)
    namespaces = [f"team-{i:04d}" for i in range(n_ns)]
    ns_objs = [{"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns,
                                                    "env": rng.choice(("prod", "staging", "dev")),
                                                    "team": f"t{i % 40}"}}}
               for i, ns in enumerate(namespaces)]
    ns_objs += [{"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}}
                for ns in ("kube-system", "default")]
    base = pod_net(n_nodes)[0]
    pods, sas, svcs, pdbs = [], [], [], []
    seen_sa = set()
    for i in range(n_pods):
        ns = namespaces[i % n_ns]
        app = APPS[(i // n_ns) % len(APPS)]
        sa = f"{app}-sa"
        if (ns, sa) not in seen_sa:
            seen_sa.add((ns, sa))
            sas.append({"apiVersion": "v1", "kind": "ServiceAccount",
                        "metadata": {"name": sa, "namespace": ns}})
            svcs.append({"apiVersion": "v1", "kind": "Service",
                         "metadata": {"name": app, "namespace": ns},
                         "spec": {"selector": {"app": app},
                                  "clusterIP": f"10.96.{len(svcs) // 250 % 256}.{len(svcs) % 250 + 1}",
                                  "ports": [{"name": "http", "port": 80, "targetPort": "http",
                                             "protocol": "TCP"}]}})
            if app == "db":
                pdbs.append({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                             "metadata": {"name": "db", "namespace": ns},
                             "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "db"}}},
                             "status": {"disruptionsAllowed": 1}})
        node = workers[i % len(workers)]
        pods.append({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{app}-{i:06d}", "namespace": ns,
                         "labels": {"app": app, "tier": rng.choice(("frontend", "backend")),
                                    "version": rng.choice(("v1", "v2"))},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                              "name": f"{app}-rs", "controller": True,
                                              "uid": f"uid-{app}"}]},
            "spec": {"nodeName": node, "serviceAccountName": sa,
                     "containers": [{"name": app, "image": f"registry.example.com/{app}:1",
                                     "ports": [{"name": "http", "containerPort": 8080,
                                                "protocol": "TCP"},
                                               {"name": "metrics", "containerPort": 9090,
                                                "protocol": "TCP"}]}]},
            "status": {"phase": "Running",
                       "podIP": f"10.{base + (i % len(workers) + 3) // 256}.{(i % len(workers) + 3) % 256}.{i // len(workers) % 250 + 2}",
                       "podIPs": [{"ip": f"10.{base + (i % len(workers) + 3) // 256}.{(i % len(workers) + 3) % 256}.{i // len(workers) % 250 + 2}"}]},
        })
    # Canal itself: one pod per node, owned by the DaemonSet
    for n in node_objs:
        name = n["metadata"]["name"]
        pods.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": f"canal-{name}", "namespace": "kube-system",
                                  "labels": {"k8s-app": "canal"},
                                  "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                                                       "name": "canal", "controller": True,
                                                       "uid": "uid-canal"}]},
                     "spec": {"nodeName": name, "hostNetwork": True, "serviceAccountName": "canal",
                              "containers": [{"name": "calico-node", "image": "calico/node:v3.30.0"}]},
                     "status": {"phase": "Running",
                                "podIP": n["status"]["addresses"][0]["address"]}})
    policies = policies_for(rng, n_pol, namespaces)
    cni = cni_objects(n_nodes)
    return {"nodes.yaml": lst(node_objs), "namespaces.yaml": lst(ns_objs), "pods.yaml": lst(pods),
            "serviceaccounts.yaml": lst(sas), "services.yaml": lst(svcs), "pdbs.yaml": lst(pdbs),
            "cni.yaml": lst(cni), **policies}


def policies_for(rng: random.Random, n: int, namespaces: list[str]) -> dict[str, dict]:
    tiers = [{"apiVersion": "crd.projectcalico.org/v1", "kind": "Tier",
              "metadata": {"name": t}, "spec": {"order": o}} for t, o in TIERS]
    tiers[1]["spec"]["defaultAction"] = "Pass"
    gnps, nps, sets, knps = [], [], [], []
    n_sets = max(2, n // 50)
    for i in range(n_sets):
        sets.append({"apiVersion": "crd.projectcalico.org/v1", "kind": "GlobalNetworkSet",
                     "metadata": {"name": f"partners-{i}", "labels": {"netset": f"partners-{i}",
                                                                      "role": "partner"}},
                     "spec": {"nets": [f"203.0.{i % 256}.0/24", f"198.51.{i % 256}.0/28"]}})
    for i in range(n):
        shape = i % 10
        ns = namespaces[i % len(namespaces)]
        app = APPS[i % len(APPS)]
        other = APPS[(i + 3) % len(APPS)]
        port = rng.choice((80, 443, 5432, 6379, 8080, 9090))
        if shape == 0:  # security tier: deny a port range from everywhere but a namespace
            gnps.append({"apiVersion": "crd.projectcalico.org/v1", "kind": "GlobalNetworkPolicy",
                         "metadata": {"name": f"security.deny-{i}"},
                         "spec": {"tier": "security", "order": 10 + i % 50,
                                  "selector": f"app == '{app}'",
                                  "types": ["Ingress"],
                                  "ingress": [
                                      {"action": "Deny", "protocol": "TCP",
                                       "source": {"namespaceSelector": f"env == 'dev'"},
                                       "destination": {"ports": [f"{port}:{port + 10}"]}},
                                      {"action": "Pass"}]}})
        elif shape == 1:  # platform tier: allow DNS, pass the rest
            gnps.append({"apiVersion": "crd.projectcalico.org/v1", "kind": "GlobalNetworkPolicy",
                         "metadata": {"name": f"platform.dns-{i}"},
                         "spec": {"tier": "platform", "order": 100 + i % 100,
                                  "selector": f"projectcalico.org/namespace == '{ns}'",
                                  "types": ["Egress"],
                                  "egress": [
                                      {"action": "Allow", "protocol": "UDP",
                                       "destination": {"selector": "k8s-app == 'kube-dns'",
                                                       "namespaceSelector": "projectcalico.org/name == 'kube-system'",
                                                       "ports": [53]}},
                                      {"action": "Pass"}]}})
        elif shape == 2:  # network set egress
            gnps.append({"apiVersion": "crd.projectcalico.org/v1", "kind": "GlobalNetworkPolicy",
                         "metadata": {"name": f"default.partners-{i}"},
                         "spec": {"tier": "default", "order": 500 + i % 100,
                                  "selector": f"app == '{app}' && has(version)",
                                  "types": ["Egress"],
                                  "egress": [{"action": "Allow", "protocol": "TCP",
                                              "destination": {"selector": f"netset == 'partners-{i % n_sets}'",
                                                              "ports": [443]}}]}})
        elif shape in (3, 4, 5):  # namespaced deny-then-allow
            nps.append({"apiVersion": "crd.projectcalico.org/v1", "kind": "NetworkPolicy",
                        "metadata": {"name": f"default.{app}-{i}", "namespace": ns},
                        "spec": {"tier": "default", "order": 100 + shape,
                                 "selector": f"app == '{app}'",
                                 "types": ["Ingress"],
                                 "ingress": [
                                     {"action": "Deny", "protocol": "TCP",
                                      "source": {"selector": f"app == '{other}' && tier == 'frontend'"},
                                      "destination": {"ports": [port]}},
                                     {"action": "Allow", "protocol": "TCP",
                                      "source": {"selector": f"app in {{'{other}', 'web'}}"},
                                      "destination": {"ports": [port, "http"]}}]}})
        elif shape == 6:  # application tier with cross-namespace peer
            nps.append({"apiVersion": "crd.projectcalico.org/v1", "kind": "NetworkPolicy",
                        "metadata": {"name": f"application.{app}-{i}", "namespace": ns},
                        "spec": {"tier": "application", "order": 10,
                                 "selector": f"app == '{app}'",
                                 "types": ["Ingress", "Egress"],
                                 "ingress": [{"action": "Allow", "protocol": "TCP",
                                              "source": {"namespaceSelector": f"team == 't{i % 40}'",
                                                         "selector": "all()"},
                                              "destination": {"ports": ["8000:8100"]}}],
                                 "egress": [{"action": "Allow"}]}})
        elif shape == 7:  # egress to CIDRs with notNets
            gnps.append({"apiVersion": "crd.projectcalico.org/v1", "kind": "GlobalNetworkPolicy",
                         "metadata": {"name": f"default.egress-{i}"},
                         "spec": {"tier": "default", "order": 900,
                                  "selector": f"app == '{app}' && projectcalico.org/namespace == '{ns}'",
                                  "types": ["Egress"],
                                  "egress": [{"action": "Allow", "protocol": "TCP",
                                              "destination": {"nets": ["0.0.0.0/0"],
                                                              "notNets": ["10.0.0.0/8", "172.16.0.0/12",
                                                                          "192.168.0.0/16"],
                                                              "ports": [443]}}]}})
        else:  # Kubernetes NetworkPolicy
            knps.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                         "metadata": {"name": f"{app}-{i}", "namespace": ns},
                         "spec": {"podSelector": {"matchLabels": {"app": app}},
                                  "policyTypes": ["Ingress"],
                                  "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": other}}},
                                                        {"namespaceSelector": {"matchLabels": {"env": "prod"}}}],
                                               "ports": [{"protocol": "TCP", "port": port}]}]}})
    return {"calico-tiers.yaml": lst(tiers), "calico-globalnetworksets.yaml": lst(sets),
            "calico-globalnetworkpolicies.yaml": lst(gnps),
            "calico-networkpolicies.yaml": lst(nps), "networkpolicies.yaml": lst(knps)}


def cni_objects(n_nodes: int) -> list[dict]:
    """The Canal objects the detector looks at (trimmed copies of the real manifest's)."""
    net = pod_net(n_nodes)[1]
    return [
        {"apiVersion": "apps/v1", "kind": "DaemonSet",
         "metadata": {"name": "canal", "namespace": "kube-system", "labels": {"k8s-app": "canal"}},
         "spec": {"selector": {"matchLabels": {"k8s-app": "canal"}},
                  "template": {"metadata": {"labels": {"k8s-app": "canal"}},
                               "spec": {"hostNetwork": True, "serviceAccountName": "canal",
                                        "containers": [
                                            {"name": "calico-node", "image": "docker.io/calico/node:v3.30.0",
                                             "env": [{"name": "DATASTORE_TYPE", "value": "kubernetes"},
                                                     {"name": "CALICO_NETWORKING_BACKEND", "value": "none"}]},
                                            {"name": "kube-flannel", "image": "ghcr.io/flannel-io/flannel:v0.26.7",
                                             "command": ["/opt/bin/flanneld", "--ip-masq", "--kube-subnet-mgr"]}]}}},
         "status": {"desiredNumberScheduled": n_nodes, "numberReady": n_nodes,
                    "numberAvailable": n_nodes, "updatedNumberScheduled": n_nodes}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "calico-kube-controllers", "namespace": "kube-system"},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"k8s-app": "calico-kube-controllers"}},
                  "template": {"metadata": {"labels": {"k8s-app": "calico-kube-controllers"}},
                               "spec": {"containers": [{"name": "calico-kube-controllers",
                                                        "image": "docker.io/calico/kube-controllers:v3.30.0"}]}}},
         "status": {"replicas": 1, "readyReplicas": 1}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "canal-config", "namespace": "kube-system"},
         "data": {"canal_iface": "", "masquerade": "true",
                  "net-conf.json": '{\n  "Network": "' + net + '",\n  "Backend": {\n    "Type": "vxlan"\n  }\n}\n'}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
         "data": {"ClusterConfiguration": "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n"
                                          "clusterName: synth\nnetworking:\n  podSubnet: 10.244.0.0/14\n"
                                          "  serviceSubnet: 10.96.0.0/12\n"}},
    ]


def write(size: str, out: Path, seed: int = 7, fmt: str | None = None) -> Path:
    """fmt "yaml" or "json" (kubectl -o json); default: yaml for S, json for M and L, as an
    operator exporting 50,000 pods would (libyaml parses ~1 MB/s of such YAML here)."""
    fmt = fmt or ("yaml" if size == "S" else "json")
    out.mkdir(parents=True, exist_ok=True)
    for name, doc in build(size, seed).items():
        if fmt == "json":
            (out / name.replace(".yaml", ".json")).write_text(
                json.dumps(doc, indent=1, sort_keys=False) + "\n", encoding="utf-8")
        else:
            (out / name).write_text(dump(doc), encoding="utf-8")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="S")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", required=True)
    ap.add_argument("--format", choices=("yaml", "json"), default=None,
                    help="default: yaml for S, json for M and L")
    a = ap.parse_args()
    print(write(a.size, Path(a.out), a.seed, a.format))


if __name__ == "__main__":
    main()
