"""cni-migrate plan --from SNAPSHOT [options]: print the wave table, the chosen pod CIDR and
tunnel, and the warnings. Nothing is written.

add_plan_options(parser) and options_from_args(args) are shared with `generate`.
"""
from __future__ import annotations

import argparse
import ipaddress
import textwrap

from ..errors import UserError
from ..inventory.source import add_source_arguments, inventory_from_args
from ..plan.model import DEFAULT_CILIUM, DEFAULT_IMAGES, SUPPORTED_CILIUM, Options


def add_plan_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("migration")
    g.add_argument("--engine", choices=("argocd", "flux"), default="argocd",
                   help="GitOps engine that applies the waves (default argocd)")
    g.add_argument("--cilium-version", default=DEFAULT_CILIUM, metavar="X.Y",
                   help=f"Cilium minor: {', '.join(SUPPORTED_CILIUM)} (default {DEFAULT_CILIUM})")
    g.add_argument("--cilium-chart-version", metavar="X.Y.Z",
                   help="exact chart version (default: the tested release of the minor)")
    g.add_argument("--cilium-pod-cidr", metavar="CIDR",
                   help="pod CIDR for Cilium (default: chosen clear of every CIDR in use)")
    g.add_argument("--service-cidr", metavar="CIDR",
                   help="service CIDR, when kubeadm-config does not tell it")
    g.add_argument("--batch-size", default="25%", metavar="N|P%",
                   help="nodes per batch after the canary: a count or a percentage of workers")
    g.add_argument("--no-canary", dest="canary", action="store_false",
                   help="do not start with a single canary worker")
    g.add_argument("--image", action="append", default=[], metavar="NAME=REF",
                   help=f"override an image ({', '.join(sorted(DEFAULT_IMAGES))}); repeatable")
    g.add_argument("--approximate", action="store_true",
                   help="allow reported approximations when translating policies")
    g.add_argument("--host-default-deny", action="store_true",
                   help="emit Calico's default deny of each HostEndpoint no policy selects as a "
                        "host policy (failsafe ports open); makes the policies wave high risk")
    g.add_argument("--repo-url", default=Options.repo_url,
                   help="URL of the git repository the GitOps engine reads")
    g.add_argument("--repo-revision", default=Options.repo_revision, metavar="BRANCH",
                   help="branch the GitOps engine follows (default main)")


def _cidr(text: str | None, flag: str) -> str | None:
    if not text:
        return None
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise UserError(f"not a CIDR: {text!r}", field=flag) from None


def options_from_args(args: argparse.Namespace) -> Options:
    version = str(args.cilium_version)
    if version not in SUPPORTED_CILIUM:
        raise UserError(f"unsupported Cilium version {version!r}: choose one of "
                        f"{', '.join(SUPPORTED_CILIUM)}", field="--cilium-version")
    images = dict(DEFAULT_IMAGES)
    for spec in args.image or []:
        name, sep, ref = spec.partition("=")
        if not sep or not ref:
            raise UserError(f"--image wants NAME=REF, got {spec!r}", field="--image")
        if name not in DEFAULT_IMAGES:
            raise UserError(f"unknown image name {name!r}: choose from "
                            f"{', '.join(sorted(DEFAULT_IMAGES))}", field="--image")
        images[name] = ref
    opts = Options(engine=args.engine, cilium_version=version,
                   cilium_chart_version=getattr(args, "cilium_chart_version", None),
                   cilium_pod_cidr=_cidr(args.cilium_pod_cidr, "--cilium-pod-cidr"),
                   service_cidr=_cidr(args.service_cidr, "--service-cidr"),
                   batch_size=str(args.batch_size), canary=getattr(args, "canary", True),
                   images=images, approximate=bool(args.approximate),
                   host_default_deny=bool(getattr(args, "host_default_deny", False)),
                   repo_url=args.repo_url,
                   repo_revision=getattr(args, "repo_revision", Options.repo_revision))
    from ..plan.planner import check_options
    check_options(opts)
    return opts


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_source_arguments(p)
    add_plan_options(p)


def load_inventory(args: argparse.Namespace, options: Options):
    from ..pipeline import apply_service_cidr
    return apply_service_cidr(inventory_from_args(args), options)


def wave_table(plan) -> str:
    """The plan as a fixed-width text table (one row per wave, wrapped columns)."""
    cols = [("wave", 4), ("what changes", 44), ("nodes", 16), ("gates", 40), ("risk", 12),
            ("est.", 6)]
    def row(cells):
        wrapped = [textwrap.wrap(c, w) or [""] for c, (_, w) in zip(cells, cols)]
        lines = []
        for i in range(max(len(x) for x in wrapped)):
            lines.append("  ".join((x[i] if i < len(x) else "").ljust(w)
                                   for x, (_, w) in zip(wrapped, cols)).rstrip())
        return lines
    out = row([c for c, _ in cols])
    out.append("  ".join("-" * w for _, w in cols))
    for w in plan.waves:
        nodes = ", ".join(w.nodes) if w.nodes else "-"
        gates = "; ".join(w.gates)
        risk = w.risk + (" (approval)" if w.needs_approval else "")
        out += row([f"{w.number:02d}", f"{w.key}: {w.title}", nodes, gates, risk,
                    f"{w.est_minutes}m"])
    return "\n".join(out)


def format_plan(plan) -> str:
    lines = [f"cluster {plan.cluster_name}: {plan.source_cni} -> Cilium "
             f"{plan.options.cilium_version} ({plan.options.engine})",
             f"pod CIDR: {plan.cilium_pod_cidr} ({plan.cidr_reason})",
             f"tunnel:   {plan.tunnel.protocol} UDP {plan.tunnel.port} ({plan.tunnel.reason})",
             "", wave_table(plan), "",
             f"total: {len(plan.waves)} waves, about {sum(w.est_minutes for w in plan.waves)} "
             "minutes"]
    if plan.warnings:
        lines += ["", "warnings:"] + [f"  - {w}" for w in plan.warnings]
    return "\n".join(lines) + "\n"


def gap_lines(plan, inv) -> list[str]:
    """Per node wave: how many policy-governed pods lose enforcement (empty without policies)."""
    if not inv.policy_objects or not inv.cni.enforces_policy:
        return []
    from ..calico.reader import read_policies
    from ..verify.gap import enforcement_gap
    policy_set = read_policies(inv.policy_objects)
    out = ["enforcement gap (pods enforced by neither Calico nor Cilium until final-values):"]
    for g in enforcement_gap(plan, inv, policy_set):
        out.append(f"  wave {g.number:02d} {g.wave}: {g.unenforced_pods} of {g.governed_pods} "
                   "policy-governed pods" + (f" ({', '.join(g.namespaces)})" if g.namespaces
                                             else ""))
    return out


def run(args: argparse.Namespace) -> int:
    import sys

    from ..plan.planner import make_plan
    options = options_from_args(args)
    inv = load_inventory(args, options)
    plan = make_plan(inv, options)
    text = format_plan(plan)
    gaps = gap_lines(plan, inv)
    if gaps:
        text += "\n" + "\n".join(gaps) + "\n"
    sys.stdout.write(text)
    return 0
