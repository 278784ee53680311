"""`cni-migrate generate`: write the migration as one git commit per wave.

    cni-migrate generate --from SNAPSHOT --engine argocd|flux --out DIR [--branches]
                         [--new-branch NAME] [plan options]
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..errors import UserError
from ..inventory.source import add_source_arguments, inventory_from_args


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .plan import add_plan_options
    add_source_arguments(p)
    add_plan_options(p)  # --engine, --cilium-version, --image, --repo-revision...
    g = p.add_argument_group("output")
    g.add_argument("--out", metavar="DIR",
                   help="output git repository (default: out/<cluster name>)")
    g.add_argument("--branches", action="store_true",
                   help="also write one stacked branch per wave (wave/NN-key), one PR each")
    g.add_argument("--new-branch", metavar="NAME",
                   help="write the whole series on this new branch instead of adding to the "
                        "current one (needed when someone added commits on top)")


def default_out(cluster_name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", cluster_name).strip(".-") or "cluster"
    return Path("out") / safe


def _check_not_in_snapshot(out: Path, args: argparse.Namespace) -> None:
    """An output inside a snapshot directory would be read back as cluster objects next run."""
    target = out.resolve()
    for snap in getattr(args, "snapshot", None) or []:
        src = Path(snap).resolve()
        if src.is_dir() and (target == src or src in target.parents):
            raise UserError("the output directory is inside the snapshot directory; its "
                            "manifests would be read as cluster objects on the next run",
                            file=str(out))


def run(args: argparse.Namespace) -> int:
    from ..cli import frozen_heap
    from ..emit.gitrepo import preflight
    from .plan import options_from_args

    options = options_from_args(args)
    if args.out:  # refuse a dirty or foreign output before the (slow) pipeline runs
        _check_not_in_snapshot(Path(args.out), args)
        preflight(args.out, new_branch=args.new_branch)
    inventory = inventory_from_args(args)
    with frozen_heap():
        return _generate(args, options, inventory)


def _generate(args, options, inventory) -> int:
    from ..emit.gitrepo import preflight, write_repo
    from ..lint import lint_files
    from ..pipeline import build

    out = Path(args.out) if args.out else default_out(inventory.cluster_name)
    if not args.out:
        _check_not_in_snapshot(out, args)
        preflight(out, new_branch=args.new_branch)
    plan, commits = build(inventory, options)
    meta = {"cluster": plan.cluster_name, "engine": options.engine,
            "cilium_version": options.cilium_version, "source_cni": plan.source_cni,
            "images": dict(sorted(options.images.items()))}
    result = write_repo(out, commits, branches=args.branches, new_branch=args.new_branch,
                        input_digest=plan.input_digest, branch=options.repo_revision,
                        meta=meta)
    for w in plan.warnings:
        print(f"warning: {w}", file=sys.stderr)
    findings = lint_files(commits[-1].tree, images=options.images)
    for f in findings:  # the output should never need these; say so loudly, keep the commits
        print(f"warning: lint: {f.line()}", file=sys.stderr)
    if result.up_to_date:
        print(f"{out}: up to date (branch {result.branch}); nothing to commit")
        return 0
    verb = {"created": "created", "updated": "added to",
            "new-branch": "wrote a new branch in"}[result.status]
    print(f"{verb} {out}: {len(result.commits)} commit(s) on branch {result.branch}:")
    for w in result.commits:  # `git log --oneline` style, in wave order
        print(f"{w.sha[:7]} {w.subject}")
    if result.branches:
        print("branches: " + ", ".join(sorted(result.branches)))
    if result.skipped_branches:
        print("left as they are (never rewritten): " + ", ".join(result.skipped_branches))
    if result.pr_files:
        where = ("in the tree" if result.status != "new-branch"
                 else f"in the tree of branch {result.branch}")
        print(f"PR descriptions: {out / 'pr'}/wave-NN.md ({len(result.pr_files)} files, {where})")
    if result.status == "new-branch":
        print(f"the work tree is unchanged; see the series with: git -C {out} log {result.branch}")
    return 0
