"""PR descriptions stay within what a pull request body holds (GitHub: 65,536 characters):
long tables are cut to pipeline.PR_ROWS rows and point at the full file in the wave."""
import importlib.util
import sys
from pathlib import Path

from generator import pipeline
from generator.cli import main
from generator.translate.report import Finding, FidelityReport, PolicyReport

ROOT = Path(__file__).resolve().parent.parent
GITHUB_BODY_MAX = 65_536


def _synth():
    spec = importlib.util.spec_from_file_location("bench_synth", ROOT / "bench" / "synth.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_synth", mod)
    spec.loader.exec_module(mod)
    return mod


def test_report_table_is_cut_worst_first():
    rep = FidelityReport()
    for i in range(10):
        p = PolicyReport("v1", "GlobalNetworkPolicy", None, f"p{i}")
        if i % 3 == 0:
            p.add(Finding("x", "not exact", None, "untranslatable"))
        rep.policies.append(p)
    short = rep.to_markdown(2, "waves/09-policies/REPORT.md")
    rows = [ln for ln in short.splitlines() if ln.startswith("| GlobalNetworkPolicy")]
    assert len(rows) == 2 and all("untranslatable" in r for r in rows)
    assert "_8 more (2 not exact) in waves/09-policies/REPORT.md_" in short
    full = rep.to_markdown()
    assert len([ln for ln in full.splitlines() if ln.startswith("| GlobalNetworkPolicy")]) == 10


def test_policies_wave_pr_points_at_the_full_report(tmp_path, monkeypatch):
    snap = _synth().write("S", tmp_path / "snap")
    monkeypatch.setattr(pipeline, "PR_ROWS", 3)
    out = tmp_path / "out"
    assert main(["generate", "--from", str(snap), "--engine", "argocd", "--out", str(out)]) == 0
    pr = next(p for p in (out / "pr").glob("wave-*.md") if "Translation fidelity" in p.read_text())
    text = pr.read_text()
    report = next(out.glob("waves/*-policies/REPORT.md")).read_text()
    n_report = sum(1 for ln in report.splitlines() if ln.startswith("| ") and "---" not in ln)
    n_pr = sum(1 for ln in text.split("## Translation fidelity")[1].split("\n## ")[0].splitlines()
               if ln.startswith("| ") and "---" not in ln)
    assert n_pr == 3 + 1 and n_report > 50          # header row + PR_ROWS rows
    assert f"_{n_report - 1 - 3} more (" in text and "-policies/REPORT.md_" in text
    for p in (out / "pr").glob("*.md"):
        assert len(p.read_text()) <= GITHUB_BODY_MAX, p.name


def test_long_node_lists_are_cut_and_point_at_the_files(tmp_path):
    from snapshots import make_snapshot
    snap = make_snapshot(tmp_path, "canal", nodes=130)
    out = tmp_path / "out"
    assert main(["generate", "--from", str(snap), "--engine", "flux", "--out", str(out),
                 "--batch-size", "60"]) == 0
    cut = [p for p in sorted((out / "pr").glob("wave-*.md")) if "more (one file each in" in
           p.read_text()]
    assert cut, "no node wave above 50 nodes: the fixture no longer exercises the cut"
    for p in cut:
        line = next(ln for ln in p.read_text().splitlines()
                    if ln.startswith("Nodes switched in this wave ("))
        total = int(line.split("(")[1].split(")")[0])
        assert line.count("`") // 2 == 50 + 1 and f"and {total - 50} more" in line
        wave_dir = line.rsplit("`waves/", 1)[1].split("`")[0]
        assert len(list((out / "waves" / wave_dir).glob("node-*.yaml"))) == total
    names = {p.name[len("node-"):-len(".yaml")] for p in out.glob("waves/*/s1-change/node-*.yaml")}
    for p in (out / "pr").glob("*.md"):     # no line of any PR names more than 50 nodes
        for line in p.read_text().splitlines():
            assert sum(1 for w in line.replace("`", " ").replace(",", " ").split()
                       if w in names) <= 50, (p.name, line[:80])


def test_enforcement_gap_section_names_at_most_50_nodes_and_namespaces():
    from generator.verify.gap import PolicyGap, WaveGap
    nodes = [f"node-{i:05d}" for i in range(3000)]
    spaces = [f"team-{i:04d}" for i in range(700)]
    pods = [f"team-0001/web-{i}" for i in range(40)]
    g = WaveGap("nodes-04", 7, nodes[-1000:], nodes, [PolicyGap("NetworkPolicy a/b", ("Ingress",),
                                                                pods, nodes)],
                spaces, 40, 50_000)
    text = g.markdown()
    assert len(text) < 20_000
    assert "and 2950 more" in text and "and 650 more" in text
    empty = WaveGap("nodes-04", 7, nodes[-1000:], nodes).markdown()
    assert "and 2950 more" in empty and len(empty) < 5_000
