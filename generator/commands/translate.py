"""`cni-migrate translate`: Calico (and Kubernetes) policies -> Cilium policies + fidelity report.

    cni-migrate translate SRC... --out DIR --report FILE.json [--cilium-version X.Y]
                          [--approximate] [--strict] [--from SNAPSHOT | --kubeconfig K]

Writes DIR/<kind>/<namespace>/<name>.yaml per object (DIR/<kind>/<name>.yaml when cluster
scoped), FILE.json and FILE.md, and DIR/helm-values.yaml when the policies need Helm settings.
Exit 0: done; 1: --strict and something is not exact; 2: input errors.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from ..inventory.source import add_source_arguments, inventory_from_args


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="+", metavar="SRC",
                   help="Calico / Kubernetes policy YAML files or directories")
    p.add_argument("--out", required=True, metavar="DIR", help="where to write Cilium objects")
    p.add_argument("--report", required=True, metavar="FILE.json",
                   help="fidelity report (JSON; a Markdown twin is written next to it)")
    p.add_argument("--cilium-version", default="1.19", help="target Cilium minor (1.16-1.19)")
    p.add_argument("--approximate", action="store_true",
                   help="emit reported approximations instead of refusing inexact rules")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when any policy is not translated exactly")
    p.add_argument("--host-default-deny", action="store_true",
                   help="for each HostEndpoint no policy selects, emit Calico's default deny as "
                        "a host policy (failsafe ports open); HIGH RISK: that node drops all "
                        "other host traffic, as it does under Calico")
    add_source_arguments(p, required=False)


def output_path(out: Path, obj: dict) -> Path:
    meta = obj["metadata"]
    if meta.get("namespace"):
        return out / obj["kind"] / meta["namespace"] / f"{meta['name']}.yaml"
    return out / obj["kind"] / f"{meta['name']}.yaml"


def require_objects(src: str, items: list) -> None:
    """A file named on the command line that holds no Kubernetes object is an error, not "0
    objects written": the user would believe it was translated. Say what it looks like."""
    if any(isinstance(i.obj.get("kind"), str) and i.obj.get("apiVersion") for i in items):
        return
    if not items:
        raise UserError("holds no Kubernetes object (the file is empty)", file=src)
    keys = sorted(str(k) for k in items[0].obj)[:4]
    hint = ("a Helm values file? render the chart first (helm template ...) and translate "
            "its output" if any(k[:1].isupper() or k in ("global", "values") for k in keys)
            else "every object needs apiVersion and kind")
    raise UserError(f"holds no Kubernetes object (top-level keys: {', '.join(keys)}): {hint}",
                    file=src)


def run(args: argparse.Namespace) -> int:
    from ..calico.reader import read_policies
    from ..cilium.model import PolicyModelError, version_tuple
    from ..translate import translate
    from ..yamlio import dump, load_paths

    try:
        version_tuple(args.cilium_version)
    except PolicyModelError as e:
        raise UserError(str(e)) from None
    inventory = inventory_from_args(args)
    # a file named on the command line must hold policies; a directory (a cluster export)
    # may hold anything, and what is not policy is skipped
    strict = not any(Path(src).is_dir() for src in args.sources)
    loaded = load_paths(args.sources)
    for src in args.sources:
        if not Path(src).is_dir():
            require_objects(src, [i for i in loaded if i.file == str(Path(src))])
    policy_set = read_policies(loaded, strict=strict)
    result = translate(policy_set, cilium_version=args.cilium_version,
                       approximate=args.approximate, inventory=inventory,
                       host_default_deny=args.host_default_deny)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)   # also when nothing is enforceable: verify reads it
    written = set()
    for obj in result.objects:
        path = output_path(out, obj)
        if path in written:
            raise UserError("two output objects map to the same file", file=str(path))
        written.add(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump(obj), encoding="utf-8")
    report = Path(args.report)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(result.report.to_json(), encoding="utf-8")
    report.with_suffix(".md").write_text(result.report.to_markdown(), encoding="utf-8")
    if result.helm_values:
        (out / "helm-values.yaml").write_text(dump(result.helm_values), encoding="utf-8")
    counts = result.report.counts()
    print(f"{len(result.objects)} objects written to {out}; policies: {counts['exact']} exact, "
          f"{counts['approximate']} approximate, {counts['untranslatable']} untranslatable; "
          f"report {report}")
    if args.strict and (counts["approximate"] or counts["untranslatable"]):
        return 1
    return 0
