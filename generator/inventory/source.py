"""Where a command gets its cluster from: a snapshot (--from) or a live cluster
(--kubeconfig/--context). Shared by plan, generate, translate and verify."""
from __future__ import annotations

import argparse

from ..errors import UserError


def add_source_arguments(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    g = p.add_argument_group("cluster")
    g.add_argument("--from", dest="snapshot", nargs="+", metavar="SNAPSHOT",
                   help="snapshot directory or YAML files (kubectl get -o yaml output)")
    g.add_argument("--kubeconfig", help="read the live cluster through this kubeconfig")
    g.add_argument("--context", help="kubeconfig context to use (live)")
    p.set_defaults(_source_required=required)


def wants_live(args: argparse.Namespace) -> bool:
    return not getattr(args, "snapshot", None) and bool(
        getattr(args, "kubeconfig", None) or getattr(args, "context", None))


def inventory_from_args(args: argparse.Namespace):
    """The Inventory named by --from or --kubeconfig/--context; None if neither was given and
    the command allows that (verify can work without an inventory)."""
    if getattr(args, "snapshot", None):
        if getattr(args, "kubeconfig", None) or getattr(args, "context", None):
            raise UserError("give either --from SNAPSHOT or --kubeconfig/--context, not both")
        from .snapshot import load_snapshot
        return load_snapshot(args.snapshot)
    if wants_live(args):
        from ..live.reader import read_inventory  # imports kubernetes: live path only
        return read_inventory(kubeconfig=args.kubeconfig, context=args.context)
    if getattr(args, "_source_required", True):
        raise UserError("no cluster given: use --from SNAPSHOT or --kubeconfig/--context")
    return None
