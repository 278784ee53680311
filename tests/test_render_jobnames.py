"""Job names follow the Job's content: a re-run with changed input must not re-create (and so
re-run) the Jobs of waves whose work did not change."""
import shutil
from pathlib import Path

import yaml

from generator.inventory.snapshot import load_snapshot
from generator.pipeline import build
from generator.plan.model import Options

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "kind-canal"

EXTRA_POLICY = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: extra-deny-all, namespace: shop}
spec: {podSelector: {}, policyTypes: [Ingress]}
"""


def job_names(commits) -> dict[str, set[str]]:
    """wave key -> names of the Jobs the wave's own directory holds (final tree)."""
    tree = commits[-1].tree
    out: dict[str, set[str]] = {}
    for c in commits:
        prefix = f"waves/{c.wave.dirname}/"
        for path, data in tree.items():
            if path.startswith(prefix) and path.endswith(".yaml"):
                for doc in yaml.safe_load_all(data):
                    if isinstance(doc, dict) and doc.get("kind") == "Job":
                        out.setdefault(c.wave.key, set()).add(doc["metadata"]["name"])
    return out


def test_unchanged_waves_keep_their_job_names(tmp_path):
    before = job_names(build(load_snapshot([str(EXAMPLE)]), Options())[1])
    snap = tmp_path / "snap"
    shutil.copytree(EXAMPLE, snap)
    (snap / "extra-policy.yaml").write_text(EXTRA_POLICY)
    after = job_names(build(load_snapshot([str(snap)]), Options())[1])
    assert before.keys() == after.keys()
    for key in ("preflight", "nodes-01", "nodes-02", "final-values", "old-cni-removal"):
        assert before[key] and before[key] == after[key], key


def test_changed_work_gets_new_job_names():
    inv = load_snapshot([str(EXAMPLE)])
    a = job_names(build(inv, Options())[1])
    b = job_names(build(inv, Options(cilium_pod_cidr="10.250.0.0/16"))[1])
    assert a["nodes-01"].isdisjoint(b["nodes-01"])
    for names in a.values():
        assert all(len(n) <= 63 for n in names)
