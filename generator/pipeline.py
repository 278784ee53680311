"""build(inventory, options) -> (Plan, list[Commit]): every stage wired together.

    plan      = make_plan(inventory, options)
    policies  = read_policies(inventory.policy_objects)
    translated = translate(policies, cilium_version=..., approximate=..., inventory=inventory)
    verified  = verify(policies, translated.objects, inventory=inventory, declared=report)
    items     = generator.jobs (+ render.kubectl_jobs) per wave
    commits   = render(plan, inventory, translated, inputs=items)

The other stages are called through the small adapters below (one place). A stage that does not
exist yet is never replaced by invented output: the wave says plainly what is not yet available.
"""
from __future__ import annotations

import importlib

from .inventory.model import Cidr, Inventory
from .plan.model import Options, Plan
from .plan.planner import make_plan
from .render import WaveInput, render
from .render import kubectl_jobs
from .render.model import STEP_CHANGE, Commit, Item
from .render.objects import node_config, node_label

NOT_AVAILABLE = "not yet available"


def stage(module: str, name: str):
    """The function `name` of `module`, or None while that stage is not written yet. Errors
    raised while importing an existing module are real bugs and propagate."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name):
            return None
        raise
    return getattr(mod, name, None)


# ----------------------------------------------------------------------------- adapters

def read_policies(inventory: Inventory):
    fn = stage("generator.calico.reader", "read_policies")
    return None if fn is None else fn(inventory.policy_objects)


def translate(policy_set, options: Options, inventory: Inventory):
    fn = stage("generator.translate", "translate")
    if fn is None or policy_set is None:
        return None
    return fn(policy_set, cilium_version=options.cilium_version,
              approximate=options.approximate, inventory=inventory)


def verify(policy_set, translation, inventory: Inventory):
    fn = stage("generator.verify", "verify")
    if fn is None or policy_set is None or translation is None:
        return None
    return fn(policy_set, list(translation.objects), inventory=inventory,
              declared=getattr(translation, "report", None))


def _jobs(name: str, *args) -> list[Item] | None:
    fn = stage("generator.jobs", name)
    return None if fn is None else list(fn(*args))


# ----------------------------------------------------------------------------- per wave

def _missing(what: str) -> str:
    return f"{what}: {NOT_AVAILABLE}; this wave has no such object yet"


def _common(plan: Plan) -> tuple[list[Item], list[Item]]:
    """common_items split: the probe DaemonSet/Service go to cilium-install (they must run on
    the old CNI before any node switches); the rest (namespace, RBAC, scripts) to preflight."""
    items = _jobs("common_items", plan)
    if items is None:
        return [], []
    probe = [i for i in items if i.obj.get("kind") in ("DaemonSet", "Service")]
    return [i for i in items if i not in probe], probe


SERVER_FIELDS = ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields",
                 "selfLink")


def _clean(obj: dict) -> dict:
    """A manifest fit for git: no server-set metadata (a stale resourceVersion makes every
    apply fail), no status, no last-applied annotation."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in SERVER_FIELDS}
    ann = {k: v for k, v in (meta.get("annotations") or {}).items()
           if k != "kubectl.kubernetes.io/last-applied-configuration"}
    if ann:
        meta["annotations"] = ann
    else:
        meta.pop("annotations", None)
    return {k: (meta if k == "metadata" else v) for k, v in obj.items() if k != "status"}


def _key(obj: dict) -> tuple:
    m = obj.get("metadata") or {}
    return (obj.get("apiVersion"), obj.get("kind"), m.get("namespace"), m.get("name"))


def _policy_items(translation, inv: Inventory) -> tuple[list[Item], list[str]]:
    """Translated objects as Items, except Kubernetes NetworkPolicies that already exist in the
    cluster: Cilium enforces them as they are, and taking them into git would let a revert (a
    prune) delete a tenant's policy. Returns the items and the names left alone."""
    existing = {_key(l.obj) for l in inv.policy_objects}
    items, kept = [], []
    for obj in translation.objects:
        if obj.get("kind") == "NetworkPolicy" and _key(obj) in existing:
            m = obj["metadata"]
            kept.append(f"{m.get('namespace')}/{m['name']}")
            continue
        items.append(Item(_clean(obj), STEP_CHANGE))
    return items, sorted(kept)


def _verify_summary(result) -> str:
    """One line: how many flows were judged and how many verdicts differ."""
    diffs = list(getattr(result, "differences", []) or [])
    if not hasattr(result, "flows_judged"):
        return ""
    undeclared = len(getattr(result, "undeclared", []) or [])
    widening = len(getattr(result, "widening", []) or [])
    return (f"{result.flows_judged} flows judged over {result.endpoints} endpoints: "
            f"{len(diffs)} verdict difference(s), {undeclared} not declared by the translation "
            f"report, {widening} widening")


def gather(plan: Plan, inv: Inventory) -> tuple[dict[str, WaveInput], object]:
    """The objects and notes of every wave, and the translation (None if unavailable)."""
    inputs: dict[str, WaveInput] = {w.key: WaveInput() for w in plan.waves}
    setup, probe = _common(plan)
    if not setup and not probe:
        inputs["preflight"].notes.append(_missing("namespace, RBAC and runner scripts "
                                                  "(generator.jobs.common_items)"))

    def jobs_into(key: str, name: str, *args) -> None:
        got = _jobs(name, *args)
        if got is None:
            inputs[key].notes.append(_missing(f"Jobs from generator.jobs.{name}"))
        else:
            inputs[key].items.extend(got)

    inputs["preflight"].items.extend(setup)
    jobs_into("preflight", "preflight_items", plan, inv)

    install = inputs["cilium-install"]
    install.items.extend(kubectl_jobs.calico_fix_items(plan, inv))
    install.items.extend(probe)
    jobs_into("cilium-install", "post_install_items", plan, inv)

    inputs["nodeconfig"].items.append(Item(node_config(plan), STEP_CHANGE,
                                           "ciliumnodeconfig-cilium-default.yaml"))
    inputs["nodeconfig"].items.extend(kubectl_jobs.nodeconfig_gate_items(plan))

    for wave in plan.waves:
        if not wave.nodes:
            continue
        wi = inputs[wave.key]
        wi.items.extend(Item(node_label(n), STEP_CHANGE, f"node-{n}.yaml") for n in wave.nodes)
        jobs_into(wave.key, "node_wave_items", plan, inv, wave)
        back = _jobs("rollback_items", plan, inv, wave)
        if back is None:
            wi.notes.append(_missing("rollback runner (generator.jobs.rollback_items)"))
        else:
            wi.rollback_items = back

    policy_set = read_policies(inv) if inv.policy_objects else None
    _gap(plan, inv, policy_set, inputs)
    translation = _policies(plan, inv, inputs["policies"], policy_set)

    inputs["final-values"].items.extend(kubectl_jobs.restart_items(plan))
    jobs_into("final-values", "final_items", plan, inv)
    inputs["nodeconfig-removal"].items.extend(kubectl_jobs.nodeconfig_removed_gate_items(plan))
    inputs["old-cni-removal"].items.extend(kubectl_jobs.removal_items(plan, inv))
    jobs_into("old-cni-removal", "removal_items", plan, inv)
    return inputs, translation


def _gap(plan: Plan, inv: Inventory, policy_set, inputs: dict[str, WaveInput]) -> None:
    """Per node wave: which policy-governed pods lose enforcement (generator.verify.gap)."""
    if policy_set is None or not inv.cni.enforces_policy:
        return
    fn = stage("generator.verify.gap", "enforcement_gap")
    if fn is None:
        for w in plan.waves:
            if w.nodes:
                inputs[w.key].notes.append(_missing("per-wave enforcement gap "
                                                    "(generator.verify.gap)"))
        return
    for g in fn(plan, inv, policy_set):
        wave = plan.wave(g.wave)
        inputs[wave.key].sections.append(g.markdown())
        summary = (f"Enforcement gap after this wave: {g.unenforced_pods} of "
                   f"{g.governed_pods} policy-governed pods are enforced by neither Calico nor "
                   f"Cilium until final-values (namespaces: {', '.join(g.namespaces)})"
                   if g.policies else
                   "Enforcement gap after this wave: none (no policy selects a pod on the "
                   "switched nodes)")
        wave.changes = [c for c in wave.changes if not c.startswith("Enforcement gap")]
        wave.changes.append(summary)


def _policies(plan: Plan, inv: Inventory, wi: WaveInput, policy_set):
    wave = plan.wave("policies")
    if not inv.policy_objects:
        wi.notes.append("the source has no network policy: no Cilium policy is created")
        return None
    if policy_set is None:
        wi.notes.append(_missing("policy reading (generator.calico.reader.read_policies)"))
        return None
    translation = translate(policy_set, plan.options, inv)
    if translation is None:
        wi.notes.append(_missing("policy translation (generator.translate.translate)"))
        return None
    items, kept = _policy_items(translation, inv)
    wi.items.extend(items)
    if kept:
        wi.notes.append(f"{len(kept)} Kubernetes NetworkPolicy object(s) stay as they are "
                        "(Cilium enforces them natively) and are not managed by this "
                        f"repository: {', '.join(kept)}")
    # Cilium reports policy import errors only in agent logs (CNP status updates are off by
    # default), so no Job gates this wave; the final-values gate exercises the policies.
    wi.notes.append("gate Job for policy acceptance: not yet available; check the agents' "
                    "logs for policy import errors before merging final-values")
    report = getattr(translation, "report", None)
    if report is not None and hasattr(report, "to_markdown"):
        wi.files["REPORT.md"] = report.to_markdown()
        wi.notes.append(f"translation report: waves/{wave.dirname}/REPORT.md")
    result = verify(policy_set, translation, inv)
    if result is None:
        wi.notes.append(_missing("verification of the translation (generator.verify.verify)"))
    else:
        text = _verify_summary(result)
        if text:
            wi.notes.append(f"verification: {text}")
        if hasattr(result, "summary_markdown"):
            wi.sections.append("## Verification\n\n" + result.summary_markdown())
        if getattr(result, "ok", True) is False:
            wave.risk = "high"
            plan.warnings.append("verification found verdicts the Cilium policies change: "
                                 f"see the policies wave ({wave.dirname})")
    wave.changes[0] = (f"create {len(items)} Cilium object(s) translated from "
                       f"{len(inv.policy_objects)} source policy object(s); "
                       "policyEnforcementMode is still never, so nothing is enforced yet")
    if kept:
        wave.changes.append(f"keep {len(kept)} Kubernetes NetworkPolicies unchanged: Cilium "
                            "enforces them natively")
    return translation


def apply_service_cidr(inventory: Inventory, options: Options) -> Inventory:
    """--service-cidr overrides detection; the new pod CIDR must stay clear of it too."""
    if options.service_cidr:
        inventory.service_cidr = options.service_cidr
        if options.service_cidr not in {c.cidr for c in inventory.cidrs}:
            inventory.cidrs.append(Cidr(options.service_cidr, "--service-cidr", "service"))
    return inventory


def build(inventory: Inventory, options: Options) -> tuple[Plan, list[Commit]]:
    inventory = apply_service_cidr(inventory, options)
    plan = make_plan(inventory, options)
    inputs, translation = gather(plan, inventory)
    return plan, render(plan, inventory, translation, inputs=inputs)
