"""The Jobs of each wave. Work Jobs (STEP_WORK) change the cluster; gate Jobs (STEP_GATE) only
check it, and the wave is done when they complete. Arguments are fixed at generation time from
the Plan and the Inventory, so the Job spec in git says exactly what the Job will do."""
from __future__ import annotations

from ..inventory.model import Inventory
from ..plan.model import Plan, Wave
from ..render.model import STEP_GATE, STEP_WORK, Item
from .spec import CILIUM_NAMESPACE, MIGRATION_LABEL, PROBE_NAME, PROBE_PORT, job, job_name

# Time budgets (seconds). A node: drain up to 10 min, agent restart 5 min, check pod 3 min.
EVICT_TIMEOUT = 600
AGENT_TIMEOUT = 300
CHECK_TIMEOUT = 180
PER_NODE_SECONDS = EVICT_TIMEOUT + AGENT_TIMEOUT + CHECK_TIMEOUT + 120
CHECK_DEADLINE = 900
BATCH_CHECK_DEADLINE = 1800   # probe pairs to a broken node time out one by one (5 s, 3 tries)


def _old_cni_args(inv: Inventory) -> list[str]:
    """--old-cni-daemonset ns/name and --old-cni-selector ns:k=v,... for the source CNI, from
    the DaemonSet objects in the inventory (their selectors name their pods after deletion)."""
    args: list[str] = []
    raw = {(o.obj.get("metadata", {}).get("namespace"), o.obj.get("metadata", {}).get("name")): o.obj
           for o in inv.objects if o.obj.get("kind") == "DaemonSet"}
    for ref in sorted(inv.cni.daemonsets):
        ns, _, name = ref.partition("/")
        args += ["--old-cni-daemonset", ref]
        match = (((raw.get((ns, name)) or {}).get("spec") or {}).get("selector") or {}).get(
            "matchLabels") or {}
        if match:
            sel = ",".join(f"{k}={v}" for k, v in sorted(match.items()))
            args += ["--old-cni-selector", f"{ns}:{sel}"]
    return args


def _common_check_args(plan: Plan) -> list[str]:
    return ["--cilium-cidr", plan.cilium_pod_cidr, "--cilium-namespace", CILIUM_NAMESPACE]


def _check_job(plan: Plan, phase: str, kind: str, key: str, args: list[str],
               step: int = STEP_GATE) -> Item:
    name = job_name(plan, "check", key)
    deadline = BATCH_CHECK_DEADLINE if phase == "batch" else CHECK_DEADLINE
    obj = job(plan, name=name, kind=kind, script="checks.py", args=[phase, *args],
              deadline_seconds=deadline, backoff_limit=1)
    return Item(obj, step, f"job-{name}.yaml")


def preflight_items(plan: Plan, inv: Inventory) -> list[Item]:
    args = _common_check_args(plan) + _old_cni_args(inv)
    # every CIDR in use (pods, services, nodes, pools) must stay clear of the new pod CIDR
    for c in sorted(inv.cidrs, key=lambda c: (c.cidr, c.origin)):
        args += ["--avoid-cidr", f"{c.cidr}={c.origin}"]
    if inv.service_cidr:
        args += ["--avoid-cidr", f"{inv.service_cidr}=service CIDR"]
    return [_check_job(plan, "preflight", "preflight", "preflight", args)]


def post_install_items(plan: Plan, inv: Inventory) -> list[Item]:
    args = _common_check_args(plan) + _old_cni_args(inv) + ["--settle-seconds", "60"]
    return [_check_job(plan, "post-install", "post-install", "post-install", args)]


def _batch_check_args(plan: Plan, wave: Wave) -> list[str]:
    args = _common_check_args(plan) + ["--probe-namespace", plan.options.namespace,
                                       "--probe-service", PROBE_NAME,
                                       "--probe-port", str(PROBE_PORT)]
    for n in wave.nodes:
        args += ["--node", n]
    return args


def _runner_args(plan: Plan, wave: Wave, *, reverse: bool) -> list[str]:
    args = ["--batch", wave.key, "--cilium-cidr", plan.cilium_pod_cidr,
            "--cilium-namespace", CILIUM_NAMESPACE, "--label", MIGRATION_LABEL,
            "--check-image", plan.options.images["runner"],
            "--evict-timeout", str(EVICT_TIMEOUT), "--agent-timeout", str(AGENT_TIMEOUT),
            "--check-timeout", str(CHECK_TIMEOUT)]
    if reverse:
        args.append("--reverse")
    for n in wave.nodes:
        args += ["--node", n]
    return args


def _runner_items(plan: Plan, wave: Wave, *, reverse: bool) -> list[Item]:
    """The runner Job for wave.nodes (forward or reverse), then its validation Job. Both
    directions use the "nodes" ServiceAccount: the same verbs."""
    if not wave.nodes:
        return []
    name = job_name(plan, "rollback" if reverse else "nodes", wave.key)
    runner = job(plan, name=name, kind="nodes", script="migrate.py",
                 args=_runner_args(plan, wave, reverse=reverse),
                 deadline_seconds=PER_NODE_SECONDS * len(wave.nodes) + 300,
                 backoff_limit=2, avoid_nodes=wave.nodes)
    key = f"rollback-{wave.key}" if reverse else wave.key
    args = _batch_check_args(plan, wave) + (["--expect", "old"] if reverse else [])
    return [Item(runner, STEP_WORK, f"job-{name}.yaml"),
            _check_job(plan, "batch", "validate", key, args)]


def node_wave_items(plan: Plan, inv: Inventory, wave: Wave) -> list[Item]:
    """The runner Job that switches wave.nodes one after the other, then a validation Job."""
    return _runner_items(plan, wave, reverse=False)


def rollback_items(plan: Plan, inv: Inventory, wave: Wave) -> list[Item]:
    """The reverse runner for a rollback branch (label removed, agent restarted, pods
    re-created on the old CNI), then a validation Job: the batch's probe pods must be back on
    old-CNI addresses and reach everyone."""
    return _runner_items(plan, wave, reverse=True)


def final_items(plan: Plan, inv: Inventory) -> list[Item]:
    return [_check_job(plan, "final", "final", "final-values", _common_check_args(plan))]


def removal_items(plan: Plan, inv: Inventory) -> list[Item]:
    args = _common_check_args(plan) + _old_cni_args(inv)
    for ref in sorted(inv.cni.deployments):
        args += ["--old-cni-deployment", ref]
    return [_check_job(plan, "removal", "removal", "old-cni-removal", args)]
