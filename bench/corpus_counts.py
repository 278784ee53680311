"""Translate every document of the Calico corpus on its own and print fidelity counts.

    python bench/corpus_counts.py [CORPUS_DIR] [--version 1.18] [--approximate] [--codes]

Each document is read and translated alone (documents come from unrelated repositories).
Prints: documents, rejected (input errors, with the INVALID-tagged ones counted apart),
and exact / approximate / untranslatable policy counts; --codes adds finding-code counts.
"""
from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from generator.calico.reader import read_policies  # noqa: E402
from generator.errors import UserError  # noqa: E402
from generator.translate import translate  # noqa: E402
from generator.yamlio import load_paths  # noqa: E402


def run_corpus(corpus: Path, version: str = "1.18", approximate: bool = False):
    """-> (per-file results, counts). A result is (file, tags, error or None, Translation)."""
    tags = {}
    for line in (corpus / "INDEX.tsv").read_text().splitlines()[1:]:
        cols = line.split("\t")
        tags[cols[0]] = cols[5] if len(cols) > 5 else ""
    results = []
    for f in sorted(corpus.glob("*.yaml")):
        try:
            ps = read_policies(load_paths([f]), strict=False)
            t = translate(ps, cilium_version=version, approximate=approximate)
            results.append((f.name, tags.get(f.name, ""), None, t))
        except UserError as e:
            results.append((f.name, tags.get(f.name, ""), e, None))
    return results


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", nargs="?", default=str(ROOT.parent / "shared/calico/corpus"))
    ap.add_argument("--version", default="1.18")
    ap.add_argument("--approximate", action="store_true")
    ap.add_argument("--codes", action="store_true")
    a = ap.parse_args()
    start = time.perf_counter()
    results = run_corpus(Path(a.corpus), a.version, a.approximate)
    fid = collections.Counter()
    codes = collections.Counter()
    rejected = rejected_invalid = objects = 0
    for name, tags, err, t in results:
        if err is not None:
            rejected += 1
            rejected_invalid += "INVALID" in tags
            continue
        objects += len(t.objects)
        for p in t.report.policies:
            if p.kind in ("Tier", "NetworkSet", "GlobalNetworkSet") or any(
                    f.code == "skipped" for f in p.findings):
                continue
            fid[p.fidelity] += 1
            for f in p.findings:
                codes[f.code] += 1
    print(f"documents {len(results)}  rejected {rejected} (INVALID-tagged {rejected_invalid})  "
          f"objects {objects}  time {time.perf_counter() - start:.1f}s")
    print(f"policies: exact {fid['exact']}  approximate {fid['approximate']}  "
          f"untranslatable {fid['untranslatable']}")
    if a.codes:
        for c, n in codes.most_common():
            print(f"  {n:5d} {c}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
