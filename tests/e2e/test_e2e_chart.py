"""The real Cilium chart renders our values into the cilium-config the migration needs.

For every supported Cilium minor, the bundled example is generated and its `cilium/values.yaml`
at the install commit (migration mode) and at the final-values commit is rendered with
`helm template` (helm built from source, e2e/cluster.py) against the chart package we pin, from
../shared/cilium/chart-packages. cilium-config is then checked key by key against the design
notes' migration mode, and the final commit must change exactly the keys it says it changes.
No cluster is needed.
"""
from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from e2e import cluster as cl
from generator.cilium.values import CHART_VERSIONS
from generator.cli import main
from harness import ROOT

EXAMPLE = ROOT / "examples" / "kind-canal"

# design/migration.md, "Migration-mode Helm values", as the chart writes them into cilium-config
MIGRATION = {
    "custom-cni-conf": "true",                 # cni.customConf: true
    "routing-mode": "tunnel",
    "tunnel-protocol": "vxlan",
    "tunnel-port": "8473",                     # clear of Flannel's (Canal's) 8472
    "ipam": "cluster-pool",
    "cluster-pool-ipv4-cidr": "10.245.0.0/16",
    "enable-policy": "never",                  # policyEnforcementMode: never
    "enable-host-legacy-routing": "true",
    "unmanaged-pod-watcher-interval": "0",     # operator.unmanagedPodWatcher.restart: false
}
# the final-values commit: cni.customConf false (Cilium writes its CNI config everywhere now,
# which brings the chart's CNI-ownership keys), the unmanaged-pod watcher back on (15 s; the
# chart writes "15" up to 1.17, "15s" after), enforcement on
FINAL = {"custom-cni-conf": "false", "enable-policy": "default",
         "unmanaged-pod-watcher-interval": ("15", "15s"),
         "write-cni-conf-when-ready": "/host/etc/cni/net.d/05-cilium.conflist",
         "cni-exclusive": "true", "cni-log-file": "/var/run/cilium/cilium-cni.log"}


@pytest.fixture(scope="module")
def helm(shared) -> str:
    try:
        cl.build(next(c for c in cl.COMPONENTS if c.name == "helm"))
    except cl.BuildError as e:
        pytest.fail(f"e2e: {e}", pytrace=False)
    return str(cl.bin_path("helm"))


def render(helm: str, chart, values_text: str, tmp_path) -> dict:
    values = tmp_path / "values.yaml"
    values.write_text(values_text)
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin",
           "HELM_CACHE_HOME": str(tmp_path / "c"), "HELM_CONFIG_HOME": str(tmp_path / "f"),
           "HELM_DATA_HOME": str(tmp_path / "d")}
    # the cluster's version, as Argo CD passes it (a helm built without its ldflags says 1.20)
    r = subprocess.run([helm, "template", "cilium", str(chart), "--namespace", "kube-system",
                        "--kube-version", cl.KUBERNETES.lstrip("v"),
                        "-f", str(values)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    return next(d for d in docs if d["kind"] == "ConfigMap"
                and d["metadata"]["name"] == "cilium-config")["data"]


def values_at(repo, subject_prefix: str) -> str:
    log = subprocess.run(["git", "-C", str(repo), "log", "--format=%H %s"], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    sha = next(line.split()[0] for line in log if line.split(" ", 1)[1].startswith(subject_prefix))
    return subprocess.run(["git", "-C", str(repo), "show", f"{sha}:cilium/values.yaml"],
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("version", sorted(CHART_VERSIONS))
def test_the_real_chart_renders_migration_and_final_values(helm, shared, tmp_path, version):
    chart = shared / "cilium" / "chart-packages" / f"cilium-{CHART_VERSIONS[version]}.tgz"
    assert chart.is_file(), f"no chart package {chart.name} in ../shared"
    repo = tmp_path / "out"
    assert main(["generate", "--from", str(EXAMPLE), "--out", str(repo),
                 "--cilium-version", version]) == 0
    migration = render(helm, chart, values_at(repo, "wave 01:"), tmp_path)
    for key, want in MIGRATION.items():
        assert migration.get(key) == want, f"{version}: cilium-config {key}"
    # the chart writes the CNI-config keys only when Cilium owns the CNI config (customConf off)
    assert not {"write-cni-conf-when-ready", "cni-exclusive"} & set(migration)
    # the Hubble export standing in for Calico's Log rules: a filter the agent can parse
    allow = migration.get("hubble-export-allowlist")
    assert allow and json.loads(allow) == {"verdict": ["DROPPED"]}, allow
    final = render(helm, chart, values_at(repo, "wave 08:"), tmp_path)
    changed = {k for k in set(migration) | set(final) if migration.get(k) != final.get(k)}
    assert changed == set(FINAL), f"{version}: final values changed {sorted(changed)}"
    for key, want in FINAL.items():
        assert final.get(key) in (want if isinstance(want, tuple) else (want,)), \
            f"{version}: final cilium-config {key} = {final.get(key)}"
