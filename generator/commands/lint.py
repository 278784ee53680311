"""`cni-migrate lint DIR`: check an output tree (restricted pods, RBAC, images, credentials)."""
from __future__ import annotations

import argparse
import sys

from ..lint import lint_tree


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", metavar="DIR", help="output tree to check (a generated repository)")


def run(args: argparse.Namespace) -> int:
    findings = lint_tree(args.dir)
    for f in findings:
        print(f.line())
    if findings:
        print(f"{len(findings)} finding(s)", file=sys.stderr)
        return 1
    print(f"{args.dir}: clean", file=sys.stderr)
    return 0
