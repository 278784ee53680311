"""Run verify over the real Calico policy corpus: translate each document, then compare.

    python bench/verify_corpus.py [--corpus DIR] [--by-repo] [--approximate] [--show N]

Per document (default) or per source repository (--by-repo: policies, tiers and network sets of
one repository judged together), in a synthetic universe. Prints documents judged, invalid ones,
flows judged, differences (declared / undeclared), widening, and the time taken.
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from generator.calico.reader import read_policies  # noqa: E402
from generator.errors import UserError  # noqa: E402
from generator.translate import translate  # noqa: E402
from generator.verify.compare import verify  # noqa: E402
from generator.yamlio import load_paths  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "calico" / "corpus"


def groups(corpus: Path, by_repo: bool) -> list[tuple[str, list[Path]]]:
    files = sorted(p for p in corpus.iterdir() if p.suffix in (".yaml", ".yml"))
    if not by_repo:
        return [(p.name, [p]) for p in files]
    repo_of: dict[str, str] = {}
    index = corpus / "INDEX.tsv"
    if index.exists():
        with index.open(encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                repo_of[row["file"]] = row["source_repo"]
    out: dict[str, list[Path]] = defaultdict(list)
    for p in files:
        out[repo_of.get(p.name, p.name)].append(p)
    return sorted(out.items())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--by-repo", action="store_true")
    ap.add_argument("--approximate", action="store_true")
    ap.add_argument("--cilium-version", default="1.19")
    ap.add_argument("--show", type=int, default=10, help="undeclared differences to show")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    judged = invalid = no_policy = 0
    flows = diffs = undeclared = widening = widening_undeclared = 0
    failures: list[tuple[str, object]] = []
    slowest: list[tuple[float, str, int]] = []
    for name, paths in groups(args.corpus, args.by_repo):
        try:
            ps = read_policies(load_paths(paths))
        except UserError:
            invalid += 1
            continue
        if not ps.policies:
            no_policy += 1
            continue
        t = time.perf_counter()
        tr = translate(ps, cilium_version=args.cilium_version, approximate=args.approximate)
        r = verify(ps, tr.objects, declared=tr.report)
        slowest.append((time.perf_counter() - t, name, r.flows_judged))
        judged += 1
        flows += r.flows_judged
        diffs += r.total_differences
        undeclared += r.total_undeclared
        widening += r.total_widening
        widening_undeclared += sum(1 for d in r.widening if not d.declared)
        if r.omitted_widening:
            widening_undeclared += r.omitted_widening   # counted only: assume undeclared
        if not r.ok:
            failures.append((name, r))
    elapsed = time.perf_counter() - t0
    unit = "repositories" if args.by_repo else "documents"
    print(f"{unit} judged:        {judged} ({invalid} invalid, {no_policy} without policies)")
    print(f"flows judged:           {flows}")
    print(f"differences:            {diffs} ({diffs - undeclared} declared, {undeclared} undeclared)")
    print(f"widening:               {widening} ({widening_undeclared} undeclared)")
    print(f"{unit} with undeclared: {len(failures)}")
    print(f"time taken:             {elapsed:.1f} s "
          f"({flows / elapsed:,.0f} flows/s including translation)")
    for secs, name, n in sorted(slowest, reverse=True)[:3]:
        print(f"  slowest: {name}: {secs:.2f} s, {n} flows")
    for name, r in failures[:args.show]:
        print(f"\n== {name}")
        print(r.text(limit=3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
