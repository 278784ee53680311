"""Cilium Helm values: keys exist in the chart, the final diff is three lines, comments, merging."""
import difflib
import json

import pytest
import yaml

from generator.cilium.values import (CHART_VERSIONS, FINAL_CHANGES, chart_version, final_values,
                                     migration_values, node_config_api_version, render_values)
from generator.errors import UserError
from generator.plan.model import Options
from generator.plan.planner import make_plan
from test_plan_fixture import make_inventory

# the nearest chart in /work/shared for each supported minor (1.16 and 1.19 are not stored)
NEAREST_CHART = {"1.16": "v1.17.6", "1.17": "v1.17.6", "1.18": "v1.18.3", "1.19": "v1.18.3"}

# the shape generator.translate produces (host endpoints, node selectors, Log rules), plus pod
# annotations that hold dots and slashes in their keys
HELM_EXTRA = {"hostFirewall": {"enabled": True}, "nodeSelectorLabels": True,
              "annotations": {"cni-migrate.io/restart": "node-selector-labels"},
              "hubble": {"enabled": True, "export": {"static": {
                  "enabled": True, "filePath": "/var/run/cilium/hubble/events.log",
                  "allowList": ['{"verdict":["DROPPED"]}']}}},
              "podAnnotations": {"cni-migrate.io/restart": "abc123"},
              "operator": {"podAnnotations": {"cni-migrate.io/restart": "abc123"}}}


def plan_for(version="1.18", **kw):
    return make_plan(make_inventory(), Options(cilium_version=version, **kw))


def _leaf_paths(d, prefix=()):
    for k, v in d.items():
        if isinstance(v, dict) and v and not str(k).lower().endswith("annotations"):
            yield from _leaf_paths(v, (*prefix, k))
        else:
            yield (*prefix, k)


@pytest.mark.parametrize("version", sorted(NEAREST_CHART))
def test_every_key_exists_in_the_chart(shared, version):
    chart_dir = shared / "cilium" / "chart" / NEAREST_CHART[version]
    chart = yaml.safe_load((chart_dir / "values.yaml").read_text())
    values = migration_values(plan_for(version), HELM_EXTRA)
    for path in _leaf_paths(values.tree()):
        cur = chart
        for k in path:
            assert isinstance(cur, dict) and k in cur, f"{'.'.join(path)} not in {chart_dir}"
            cur = cur[k]
    # and the chart's own schema accepts both forms
    import jsonschema
    schema = json.loads((chart_dir / "values.schema.json").read_text())
    for form in (values, final_values(values)):
        merged = _merge(chart, form.tree())
        jsonschema.Draft7Validator(schema).validate(merged)


def _merge(base, over):
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def test_final_values_diff_is_exactly_the_three_lines():
    values = migration_values(plan_for(), HELM_EXTRA)
    a = render_values(values, cluster_name="c").splitlines()
    b = render_values(final_values(values), cluster_name="c").splitlines()
    changed = [l for l in difflib.unified_diff(a, b, n=0, lineterm="")
               if l[:1] in "+-" and not l.startswith(("+++", "---"))]
    assert len(changed) == 6
    removed = sorted(l[1:].strip() for l in changed if l.startswith("-"))
    added = sorted(l[1:].strip() for l in changed if l.startswith("+"))
    assert removed == ["customConf: true", "policyEnforcementMode: never", "restart: false"]
    assert added == ["customConf: false", "policyEnforcementMode: default", "restart: true"]


def test_rendered_values_parse_to_the_tree_with_a_comment_per_key():
    plan = plan_for()
    values = migration_values(plan, HELM_EXTRA)
    text = render_values(values, cluster_name="c")
    assert yaml.safe_load(text) == values.tree()
    tree = values.tree()
    assert tree["cni"]["customConf"] is True and tree["cni"]["uninstall"] is False
    assert tree["policyEnforcementMode"] == "never"
    assert tree["operator"]["unmanagedPodWatcher"]["restart"] is False
    assert tree["routingMode"] == "tunnel"
    assert tree["tunnelPort"] == plan.tunnel.port and tree["tunnelPort"] != 8472
    assert tree["ipam"]["operator"]["clusterPoolIPv4PodCIDRList"] == [plan.cilium_pod_cidr]
    assert tree["bpf"]["hostLegacyRouting"] is True
    assert tree["hubble"]["tls"]["auto"]["method"] == "cronJob"   # not minted at render time
    assert tree["podAnnotations"] == {"cni-migrate.io/restart": "abc123"}
    lines = text.splitlines()
    for key in ("customConf", "policyEnforcementMode", "restart", "tunnelPort", "hostLegacyRouting",
                "method", "clusterPoolIPv4PodCIDRList", "uninstall"):
        idx = next(i for i, l in enumerate(lines) if l.strip().startswith(key + ":"))
        assert lines[idx - 1].strip().startswith("#"), key


def test_translation_cannot_override_migration_keys():
    values = migration_values(plan_for(), {"policyEnforcementMode": "always",
                                           "cni": {"customConf": False}})
    assert values.get("policyEnforcementMode") == "never"
    assert values.get("cni.customConf") is True
    assert len(values.warnings) == 2


def test_versions():
    assert CHART_VERSIONS == {"1.16": "1.16.19", "1.17": "1.17.18", "1.18": "1.18.12",
                              "1.19": "1.19.6"}
    assert chart_version("1.17", "1.17.2") == "1.17.2"
    with pytest.raises(UserError):
        chart_version("1.17", "1.18.0")
    with pytest.raises(UserError):
        chart_version("1.20")
    assert node_config_api_version("1.16") == "cilium.io/v2"
    assert node_config_api_version("1.15") == "cilium.io/v2alpha1"
    assert set(FINAL_CHANGES) == {"cni.customConf", "operator.unmanagedPodWatcher.restart",
                                  "policyEnforcementMode"}


def test_chart_versions_are_the_newest_packaged_patch_of_each_minor(shared):
    packaged: dict[str, list[tuple[int, ...]]] = {}
    for f in (shared / "cilium" / "chart-packages").glob("cilium-*.tgz"):
        v = tuple(int(x) for x in f.name[len("cilium-"):-len(".tgz")].split("."))
        packaged.setdefault(f"{v[0]}.{v[1]}", []).append(v)
    for minor, version in CHART_VERSIONS.items():
        assert version == ".".join(map(str, max(packaged[minor]))), minor


def test_hubble_allowlist_items_are_the_json_the_chart_joins(shared):
    """The chart writes `allowList | join " "` into cilium-config: each item must be one JSON
    filter as text (an object would render as Go's map[...] and the agent rejects it)."""
    import json
    import tarfile
    from generator.calico.reader import read_policies
    from generator.translate import translate
    from generator.yamlio import load_text
    with tarfile.open(shared / "cilium" / "chart-packages" /
                      f"cilium-{CHART_VERSIONS['1.19']}.tgz") as t:
        cm = next(t.extractfile(m).read().decode() for m in t.getmembers()
                  if m.name.endswith("templates/cilium-configmap.yaml"))
    assert 'allowList | join " "' in cm
    gnp = """apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata: {name: log-drops}
spec:
  selector: all()
  types: [Ingress]
  ingress:
  - action: Log
  - action: Deny
"""
    tr = translate(read_policies(load_text(gnp, "log.yaml")), cilium_version="1.19")
    items = tr.helm_values["hubble"]["export"]["static"]["allowList"]
    assert items and all(isinstance(i, str) and isinstance(json.loads(i), dict) for i in items)
    assert json.loads(" ".join(items)) == {"verdict": ["DROPPED"]}
