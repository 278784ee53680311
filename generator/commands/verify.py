"""`cni-migrate verify`: check that Cilium policies keep every Calico verdict.

    cni-migrate verify SRC... --cilium DIR [--report FIDELITY.json]
        compare Calico/Kubernetes policies (files or directories) with a given set of Cilium
        policy YAML files, e.g. a hand-edited translation
    cni-migrate verify --from SNAPSHOT [--cilium DIR]
        policies of the snapshot; translated with the tool's own translator unless --cilium

With --from/--kubeconfig the universe is the cluster's real endpoints; otherwise a synthetic
universe is built from the policies. Exit 0: no undeclared difference; 1: undeclared
differences (printed with counterexamples); 2: input errors.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import UserError
from ..inventory.source import add_source_arguments, inventory_from_args

CILIUM_KINDS = ("CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy", "CiliumCIDRGroup")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="*", metavar="SRC",
                   help="Calico / Kubernetes policy YAML files or directories")
    p.add_argument("--cilium", nargs="+", metavar="DIR",
                   help="Cilium policy YAML files or directories to check against the sources")
    p.add_argument("--report", metavar="FILE.json",
                   help="the translator's fidelity report: differences it declares are not failures")
    p.add_argument("--cilium-version", default=None, help="Cilium minor version for translating")
    p.add_argument("--approximate", action="store_true",
                   help="when translating, allow reported approximations")
    p.add_argument("--json", dest="json_out", metavar="FILE", help="write the result as JSON")
    p.add_argument("--markdown", metavar="FILE", help="write the PR summary (Markdown)")
    p.add_argument("--limit", type=int, default=50, help="difference groups to print (default 50)")
    p.add_argument("--max-endpoints", type=int, default=None, metavar="N",
                   help="judge at most N endpoint classes (default: all; the work is quadratic)")
    add_source_arguments(p, required=False)


def _cilium_objects(paths: list[str]) -> list[dict]:
    from ..yamlio import load_paths
    out = []
    for item in load_paths(paths):
        kind = item.obj.get("kind")
        if kind in CILIUM_KINDS or (kind == "NetworkPolicy" and str(
                item.obj.get("apiVersion", "")).startswith("networking.k8s.io")):
            spec_ok = isinstance(item.obj.get("spec"), dict) or isinstance(item.obj.get("specs"), list)
            if not spec_ok:
                raise UserError("policy has no spec", file=item.where, obj=_name(item.obj))
            out.append(item.obj)
    # a folder that `translate` wrote with nothing in it (every policy staged, say) is an empty
    # translation, which verify judges like any other; a file without policies is a mistake
    if not out and not all(Path(p).is_dir() for p in paths):
        raise UserError("no Cilium policies found", file=", ".join(paths))
    return out


def _name(obj: dict) -> str:
    from ..errors import object_name
    return object_name(obj)


def _load_report(path: str):
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read fidelity report: {e}", file=path) from None
    if isinstance(data, dict):
        for key in ("policies", "entries", "items", "rules"):
            if isinstance(data.get(key), list):
                return data[key]
    return data


def run(args: argparse.Namespace) -> int:
    from ..calico.reader import read_policies
    from ..verify.compare import verify
    from ..yamlio import load_paths

    inventory = inventory_from_args(args)
    if args.sources:
        loaded = load_paths(args.sources)
    elif inventory is not None:
        loaded = list(inventory.policy_objects)
    else:
        raise UserError("nothing to verify: give Calico policy files (SRC...) or --from SNAPSHOT")
    policy_set = read_policies(loaded)
    declared = _load_report(args.report) if args.report else None
    if args.cilium:
        objects = _cilium_objects(args.cilium)
    else:
        if inventory is None:
            raise UserError("give --cilium DIR (the policies to check), or --from SNAPSHOT to "
                            "translate with this tool's translator")
        from ..translate import translate
        from ..plan.model import DEFAULT_CILIUM
        tr = translate(policy_set, cilium_version=args.cilium_version or DEFAULT_CILIUM,
                       approximate=args.approximate, inventory=inventory)
        objects = list(tr.objects)
        if declared is None:
            declared = getattr(tr, "report", None)
    result = verify(policy_set, objects, inventory=inventory, declared=declared,
                    max_endpoints=args.max_endpoints)
    print(result.text(limit=args.limit))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n",
                                       encoding="utf-8")
    if args.markdown:
        Path(args.markdown).write_text(result.summary_markdown(), encoding="utf-8")
    sys.stdout.flush()
    return 0 if result.ok else 1
