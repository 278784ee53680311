"""detect_cni and collect_cidrs on snapshots built from the real install manifests."""
import json

import pytest
import yaml

from generator.errors import UserError
from generator.inventory.detect import collect_cidrs, detect_cni
from generator.inventory.snapshot import load_snapshot
from generator.yamlio import Loaded, load_paths
from snapshots import install_objects, make_snapshot


def _inv(tmp_path, cni, **kw):
    return load_snapshot([str(make_snapshot(tmp_path, cni, **kw))])


@pytest.mark.parametrize("cni,kind,encap,port,ns,ds", [
    ("flannel", "flannel", "vxlan", 8472, "kube-flannel", ["kube-flannel/kube-flannel-ds"]),
    ("canal", "canal", "vxlan", 8472, "kube-system", ["kube-system/canal"]),
    ("calico", "calico", "ipip", None, "kube-system", ["kube-system/calico-node"]),
    ("calico-vxlan", "calico", "vxlan-crosssubnet", 4789, "kube-system",
     ["kube-system/calico-node"]),
    ("calico-operator", "calico-operator", "vxlan-crosssubnet", 4789, "calico-system",
     ["calico-system/calico-node"]),
])
def test_each_source_cni(tmp_path, cni, kind, encap, port, ns, ds):
    c = _inv(tmp_path, cni).cni
    assert (c.kind, c.encapsulation, c.tunnel_port, c.namespace, c.daemonsets) == \
        (kind, encap, port, ns, ds)
    assert c.enforces_policy == (cni != "flannel")
    assert c.evidence and not c.warnings


def test_controllers_listed(tmp_path):
    assert _inv(tmp_path / "a", "canal").cni.deployments == ["kube-system/calico-kube-controllers"]
    assert _inv(tmp_path / "b", "calico-operator").cni.deployments == [
        "tigera-operator/tigera-operator", "calico-system/calico-kube-controllers"]
    assert _inv(tmp_path / "c", "flannel").cni.deployments == []


@pytest.mark.parametrize("backend,encap,port", [
    ({"Type": "vxlan", "Port": 8475}, "vxlan", 8475),
    ({"Type": "vxlan", "Port": 0}, "vxlan", 8472),
    ({"Type": "host-gw"}, "host-gw", None),
    ({"Type": "wireguard"}, "wireguard", None),
    ({}, "vxlan", 8472),
])
def test_flannel_backends(tmp_path, backend, encap, port):
    c = _inv(tmp_path, "flannel", flannel_backend=backend).cni
    assert (c.encapsulation, c.tunnel_port) == (encap, port)
    # only VXLAN is the documented path; other backends are flagged
    assert bool(c.warnings) == (encap != "vxlan")


def test_flannel_unknown_backend(tmp_path):
    with pytest.raises(UserError) as e:
        _inv(tmp_path, "canal", flannel_backend={"Type": "udp"})
    assert "canal-config" in str(e.value) and "udp" in str(e.value)


def test_flannel_bad_json_names_field(tmp_path):
    snap = make_snapshot(tmp_path, "flannel")
    p = snap / "configmaps.yaml"
    doc = yaml.safe_load(p.read_text())
    cm = next(i for i in doc["items"] if i["metadata"]["name"] == "kube-flannel-cfg")
    cm["data"]["net-conf.json"] = '{"Network": 10.244.0.0/16}'
    p.write_text(yaml.safe_dump(doc))
    with pytest.raises(UserError) as e:
        load_snapshot([str(snap)])
    assert "configmaps.yaml" in str(e.value) and "net-conf.json" in str(e.value)


@pytest.mark.parametrize("encap,port", [("ipip", None), ("ipip-crosssubnet", None),
                                        ("vxlan", 4789), ("vxlan-crosssubnet", 4789)])
def test_calico_ippool_modes(tmp_path, encap, port):
    c = _inv(tmp_path, "calico", encapsulation=encap).cni
    assert (c.encapsulation, c.tunnel_port) == (encap, port)


def test_calico_custom_vxlan_port(tmp_path):
    c = _inv(tmp_path, "calico-vxlan", vxlan_port=4790).cni
    assert c.tunnel_port == 4790
    assert any("vxlanPort 4790" in e for e in c.evidence)


def test_calico_bgp_without_encapsulation_warns(tmp_path):
    c = _inv(tmp_path, "calico", encapsulation="none").cni
    assert c.encapsulation == "none" and c.tunnel_port is None
    assert any("untested upstream" in w for w in c.warnings)
    c = _inv(tmp_path / "op", "calico-operator", encapsulation="None").cni
    assert any("untested upstream" in w for w in c.warnings)


def test_calico_env_used_without_ippools(tmp_path):
    # calico.yaml: CALICO_IPV4POOL_IPIP=Always; calico-vxlan.yaml: VXLAN CrossSubnet
    assert _inv(tmp_path / "a", "calico", ippool=False).cni.encapsulation == "ipip"
    c = _inv(tmp_path / "b", "calico-vxlan", ippool=False).cni
    assert (c.encapsulation, c.tunnel_port) == ("vxlan-crosssubnet", 4789)


@pytest.mark.parametrize("value,encap", [("IPIP", "ipip"), ("IPIPCrossSubnet", "ipip-crosssubnet"),
                                         ("VXLAN", "vxlan"), ("None", "none")])
def test_operator_encapsulations(tmp_path, value, encap):
    assert _inv(tmp_path, "calico-operator", encapsulation=value).cni.encapsulation == encap


def test_operator_bad_encapsulation(tmp_path):
    with pytest.raises(UserError) as e:
        _inv(tmp_path, "calico-operator", encapsulation="GRE")
    assert "spec.calicoNetwork.ipPools[0].encapsulation" in str(e.value)


def test_operator_detected_from_installation_alone(shared):
    objs = load_paths([shared / "cni-installs" / "calico__custom-resources.yaml"])
    c = detect_cni(objs)
    assert (c.kind, c.encapsulation, c.tunnel_port) == ("calico-operator", "vxlan-crosssubnet",
                                                       4789)


def _loaded(objs):
    return [Loaded(o, "snap.yaml", i, None) for i, o in enumerate(objs)]


def _ds(name, ns, image, containers=None):
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"template": {"spec": {"containers": containers or [
                {"name": name, "image": image}]}}}}


@pytest.mark.parametrize("ds,words", [
    (_ds("cilium", "kube-system", "quay.io/cilium/cilium:v1.18.3"), "Cilium is already"),
    (_ds("weave-net", "kube-system", "weaveworks/weave-kube:2.8.1"), "Weave"),
    (_ds("kube-router", "kube-system", "docker.io/cloudnativelabs/kube-router"), "kube-router"),
])
def test_foreign_cni_refused(ds, words):
    with pytest.raises(UserError) as e:
        detect_cni(_loaded([ds]))
    assert words in str(e.value) and ds["metadata"]["name"] in str(e.value)


def test_cilium_alongside_canal_refused():
    objs = [o for o in install_objects("canal")] + \
           [_ds("cilium", "kube-system", "quay.io/cilium/cilium:v1.18.3")]
    with pytest.raises(UserError, match="Cilium is already installed"):
        detect_cni(_loaded(objs))


def test_nothing_found_lists_daemonsets():
    with pytest.raises(UserError) as e:
        detect_cni(_loaded([_ds("kube-proxy", "kube-system", "registry.k8s.io/kube-proxy")]))
    assert "no supported CNI" in str(e.value) and "kube-system/kube-proxy" in str(e.value)
    with pytest.raises(UserError, match="DaemonSets in the snapshot: none"):
        detect_cni([])


def test_cidrs_collected_with_origins(tmp_path):
    inv = _inv(tmp_path, "calico", nodes=3)
    by_role = {}
    for c in inv.cidrs:
        by_role.setdefault(c.role, []).append(c)
    assert {c.cidr for c in by_role["node"]} == {"172.18.0.2/32", "172.18.0.3/32",
                                                 "172.18.0.4/32"}
    assert [c.cidr for c in by_role["ippool"]] == ["192.168.0.0/16"]
    assert by_role["ippool"][0].origin == "IPPool default-ipv4-ippool"
    assert {c.cidr for c in by_role["pod"]} >= {"192.168.0.0/24", "192.168.0.0/16"}
    assert [c.cidr for c in by_role["service"]] == ["10.96.0.0/12"]
    assert inv.service_cidr == "10.96.0.0/12"


def test_flannel_network_and_operator_pool(tmp_path):
    inv = _inv(tmp_path, "flannel", pod_cidr="10.50.0.0/16")
    assert any(c.role == "flannel" and c.cidr == "10.50.0.0/16" for c in inv.cidrs)
    inv = _inv(tmp_path / "op", "calico-operator", pod_cidr="10.60.0.0/16")
    assert any(c.role == "ippool" and c.cidr == "10.60.0.0/16" and "Installation" in c.origin
               for c in inv.cidrs)


def test_service_cidr_override_and_dual_stack(tmp_path):
    snap = make_snapshot(tmp_path, "canal", service_cidr="10.96.0.0/12,fd00:10:96::/112")
    inv = load_snapshot([str(snap)])
    assert inv.service_cidr == "10.96.0.0/12"
    assert {c.cidr for c in inv.cidrs if c.role == "service"} == {"10.96.0.0/12",
                                                                  "fd00:10:96::/112"}
    inv = load_snapshot([str(snap)], service_cidr="10.112.0.0/16")
    assert inv.service_cidr == "10.112.0.0/16"
    assert [c.origin for c in inv.cidrs if c.role == "service"] == ["--service-cidr"]


def test_without_kubeadm_cluster_ips_are_kept(tmp_path):
    inv = _inv(tmp_path, "canal", kubeadm=False)
    assert inv.service_cidr is None
    svc = {c.cidr for c in inv.cidrs if c.role == "service"}
    assert svc == {"10.96.0.1/32", "10.96.100.10/32"}


def test_malformed_cidr_names_file_object_field(tmp_path):
    bad = {"apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
           "metadata": {"name": "broken"}, "spec": {"cidr": "10.300.0.0/16"}}
    with pytest.raises(UserError) as e:
        _inv(tmp_path, "calico", extra_objects=[bad])
    msg = str(e.value)
    assert "ippools.yaml" in msg and "IPPool broken" in msg and "spec.cidr" in msg

    snap = make_snapshot(tmp_path / "n", "canal", nodes=2)
    p = snap / "nodes.yaml"
    p.write_text(p.read_text().replace("10.244.1.0/24", "10.244.1.0/33"))
    with pytest.raises(UserError) as e:
        load_snapshot([str(snap)])
    msg = str(e.value)
    assert "nodes.yaml" in msg and "Node worker-1" in msg and "spec.podCIDRs[0]" in msg


def test_malformed_kubeadm_service_subnet(tmp_path):
    with pytest.raises(UserError) as e:
        _inv(tmp_path, "flannel", service_cidr="10.96.0.0/40")
    assert "kubeadm-config" in str(e.value) and "serviceSubnet" in str(e.value)


def test_collect_cidrs_direct():
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "kube-flannel-cfg", "namespace": "kube-flannel"},
          "data": {"net-conf.json": json.dumps({"Network": "10.244.5.0/16"})}}
    cidrs, svc = collect_cidrs(_loaded([cm]), [], "10.0.0.0/16")
    assert [(c.cidr, c.role) for c in cidrs] == [("10.244.0.0/16", "flannel"),
                                                 ("10.0.0.0/16", "service")]
    assert svc == "10.0.0.0/16"


def test_rke2_style_canal_finds_mounted_config():
    objs = install_objects("canal")
    for o in objs:
        if o["kind"] == "DaemonSet":
            o["metadata"]["name"] = "rke2-canal"
            for v in o["spec"]["template"]["spec"]["volumes"]:
                if (v.get("configMap") or {}).get("name") == "canal-config":
                    v["configMap"]["name"] = "rke2-canal-config"
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "canal-config":
            o["metadata"]["name"] = "rke2-canal-config"
            o["data"]["net-conf.json"] = json.dumps(
                {"Network": "10.42.0.0/16", "Backend": {"Type": "vxlan", "Port": 8999}})
    loaded = _loaded(objs)
    c = detect_cni(loaded)
    assert (c.kind, c.daemonsets, c.tunnel_port) == ("canal", ["kube-system/rke2-canal"], 8999)
    assert not c.warnings
    cidrs, _ = collect_cidrs(loaded, [], None)
    assert [(x.cidr, x.role) for x in cidrs] == [("10.42.0.0/16", "flannel")]


def test_canal_without_config_assumes_defaults_and_warns():
    objs = [o for o in install_objects("canal") if o["kind"] != "ConfigMap"]
    c = detect_cni(_loaded(objs))
    assert (c.encapsulation, c.tunnel_port) == ("vxlan", 8472)
    assert any("not exported" in w for w in c.warnings)


def test_per_arch_flannel_daemonsets():
    objs = [_ds(f"kube-flannel-ds-{a}", "kube-system", "quay.io/coreos/flannel:v0.11.0",
                [{"name": "kube-flannel", "image": "quay.io/coreos/flannel:v0.11.0"}])
            for a in ("arm64", "amd64")]
    c = detect_cni(_loaded(objs))
    assert c.kind == "flannel" and c.daemonsets == ["kube-system/kube-flannel-ds-amd64",
                                                    "kube-system/kube-flannel-ds-arm64"]


def test_embedded_flannel_hint():
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {
        "name": "k3s-1", "annotations": {"flannel.alpha.coreos.com/backend-type": "vxlan"}}}
    with pytest.raises(UserError, match="embedded in k3s/RKE2"):
        detect_cni(_loaded([node]))


def test_old_ippool_ipip_form(tmp_path):
    pool = {"apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
            "metadata": {"name": "legacy"},
            "spec": {"cidr": "10.70.0.0/16", "ipip": {"enabled": True, "mode": "cross-subnet"}}}
    c = _inv(tmp_path, "calico", ippool=False, extra_objects=[pool]).cni
    assert c.encapsulation == "ipip-crosssubnet"


def test_mixed_pools_prefer_vxlan_and_warn(tmp_path):
    pool = {"apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
            "metadata": {"name": "extra"},
            "spec": {"cidr": "10.71.0.0/16", "vxlanMode": "Always", "ipipMode": "Never"}}
    disabled = {"apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
                "metadata": {"name": "old"}, "spec": {"cidr": "10.72.0.0/16",
                                                      "ipipMode": "Never", "disabled": True}}
    c = _inv(tmp_path, "calico", extra_objects=[pool, disabled]).cni
    assert (c.encapsulation, c.tunnel_port) == ("vxlan", 4789)
    assert any("different encapsulations" in w and "IPPool extra=vxlan" in w for w in c.warnings)
    assert not any("old" in w for w in c.warnings)


def test_ebpf_dataplane_warns(tmp_path):
    felix = {"apiVersion": "crd.projectcalico.org/v1", "kind": "FelixConfiguration",
             "metadata": {"name": "default"}, "spec": {"bpfEnabled": True}}
    c = _inv(tmp_path, "calico", extra_objects=[felix]).cni
    assert any("eBPF dataplane" in w for w in c.warnings)


def test_flannel_ipv6_network_collected():
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "kube-flannel-cfg", "namespace": "kube-flannel"},
          "data": {"net-conf.json": json.dumps({"Network": "10.244.0.0/16", "EnableIPv6": True,
                                                "IPv6Network": "fd00:10:244::/56"})}}
    cidrs, _ = collect_cidrs(_loaded([cm]), [], None)
    assert [c.cidr for c in cidrs] == ["10.244.0.0/16", "fd00:10:244::/56"]


def test_calico_env_unset_means_never_and_default_pool():
    # calico-node's startup parses an unset CALICO_IPV4POOL_IPIP as Never
    ds = _ds("calico-node", "kube-system", "quay.io/calico/node:v3.30.0")
    loaded = _loaded([ds])
    c = detect_cni(loaded)
    assert (c.kind, c.encapsulation) == ("calico", "none")
    assert any("untested upstream" in w for w in c.warnings)
    cidrs, _ = collect_cidrs(loaded, [], None)
    assert [(x.cidr, x.role) for x in cidrs] == [("192.168.0.0/16", "ippool")]
    ds["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "CALICO_IPV4POOL_VXLAN", "value": "cross-subnet"},
        {"name": "CALICO_IPV4POOL_CIDR", "value": "10.10.0.0/16"},
        {"name": "FELIX_VXLANPORT", "value": "4790"}]
    c = detect_cni(loaded)
    assert (c.encapsulation, c.tunnel_port) == ("vxlan-crosssubnet", 4790)
    cidrs, _ = collect_cidrs(loaded, [], None)
    assert [(x.cidr, x.role) for x in cidrs] == [("10.10.0.0/16", "ippool")]


def test_pod_ips_outside_known_ranges_are_kept(tmp_path):
    stray = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "old", "namespace": "shop"},
             "spec": {"nodeName": "worker-1", "containers": [{"name": "c"}]},
             "status": {"podIP": "10.99.3.7", "podIPs": [{"ip": "10.99.3.7"}]}}
    inv = _inv(tmp_path, "canal", extra_objects=[stray])
    extra = [c for c in inv.cidrs if c.origin.startswith("pod IPs")]
    assert [(c.cidr, c.role) for c in extra] == [("10.99.3.0/24", "pod")]
    assert "Pod shop/old" in extra[0].origin
    # pods inside their node's range add nothing
    assert not [c for c in _inv(tmp_path / "b", "canal").cidrs if c.origin.startswith("pod IPs")]


def test_control_plane_flags_give_ranges_without_kubeadm(tmp_path):
    def static(component, command):
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"{component}-cp", "namespace": "kube-system",
                             "labels": {"component": component, "tier": "control-plane"}},
                "spec": {"nodeName": "control-plane", "hostNetwork": True,
                         "containers": [{"name": component, "command": command}]}}
    pods = [static("kube-apiserver", ["kube-apiserver", "--service-cluster-ip-range",
                                      "10.43.0.0/16,fd00:43::/112"]),
            static("kube-controller-manager", ["kube-controller-manager",
                                               "--cluster-cidr=10.42.0.0/16"])]
    inv = _inv(tmp_path, "flannel", kubeadm=False, extra_objects=pods)
    assert inv.service_cidr == "10.43.0.0/16"
    got = {(c.cidr, c.role) for c in inv.cidrs if "--" in c.origin}
    assert got == {("10.43.0.0/16", "service"), ("fd00:43::/112", "service"),
                   ("10.42.0.0/16", "pod")}
    # ClusterIPs are not needed once the range is known
    assert not any("clusterIP" in c.origin for c in inv.cidrs)
    bad = [static("kube-apiserver", ["kube-apiserver", "--service-cluster-ip-range=10.43/99"])]
    with pytest.raises(UserError) as e:
        _inv(tmp_path / "bad", "flannel", kubeadm=False, extra_objects=bad)
    assert "Pod kube-system/kube-apiserver-cp" in str(e.value) and "pods.yaml" in str(e.value)
