"""build(inventory, options) -> (Plan, list[Commit]): every stage wired together.

    plan       = make_plan(inventory, options)
    policies   = read_policies(inventory.policy_objects)
    translated = translate(policies, cilium_version=..., approximate=..., inventory=inventory)
    verified   = verify(policies, translated.objects, inventory=inventory, declared=report)
    items      = generator.jobs (runner Jobs, kubectl Jobs) + verify.probes, per wave
    commits    = render(plan, inventory, translated, inputs=items)
"""
from __future__ import annotations

from . import jobs
from .calico.reader import read_policies
from .inventory.model import Cidr, Inventory
from .listing import LIMIT, some
from .plan.model import Options, Plan
from .plan.planner import make_plan
from .render import WaveInput, render
from .jobs import kubectl as kubectl_jobs
from .render.model import STEP_CHANGE, Commit, Item
from .render.objects import node_config, node_label
from .translate import translate
from .verify import gap, probes
from .verify.compare import verify

# verify inside generate is quadratic in endpoint classes (~35 us per class pair here): above
# this many classes it judges a deterministic subset and says so; `cni-migrate verify` judges all.
VERIFY_MAX_ENDPOINTS = 300
PR_ROWS = LIMIT  # rows of a table in a PR description (see generator/listing.py)


# ----------------------------------------------------------------------------- per wave

def _common(plan: Plan) -> tuple[list[Item], list[Item]]:
    """common_items split: the probe DaemonSet/Service go to cilium-install (they must run on
    the old CNI before any node switches); the rest (namespace, RBAC, scripts) to preflight."""
    items = jobs.common_items(plan)
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
    return (f"{result.flows_judged} flows judged over {result.endpoints} endpoints: "
            f"{result.total_differences} verdict difference(s), {result.total_undeclared} not "
            f"declared by the translation report, {result.total_widening} widening")


def gather(plan: Plan, inv: Inventory) -> tuple[dict[str, WaveInput], object]:
    """The objects and notes of every wave, and the translation (None if unavailable)."""
    inputs: dict[str, WaveInput] = {w.key: WaveInput() for w in plan.waves}
    setup, probe = _common(plan)
    inputs["preflight"].items.extend(setup)
    inputs["preflight"].items.extend(jobs.preflight_items(plan, inv))
    policy_set = read_policies(inv.policy_objects) if inv.policy_objects else None

    install = inputs["cilium-install"]
    install.items.extend(kubectl_jobs.calico_fix_items(plan, inv))
    install.items.extend(probe)
    install.items.extend(jobs.post_install_items(plan, inv))

    inputs["nodeconfig"].items.append(Item(node_config(plan), STEP_CHANGE,
                                           "ciliumnodeconfig-cilium-default.yaml"))
    inputs["nodeconfig"].items.extend(kubectl_jobs.nodeconfig_gate_items(plan))

    for wave in plan.waves:
        if not wave.nodes:
            continue
        wi = inputs[wave.key]
        wi.items.extend(Item(node_label(n), STEP_CHANGE, f"node-{n}.yaml") for n in wave.nodes)
        wi.items.extend(jobs.node_wave_items(plan, inv, wave))
        wi.rollback_items = jobs.rollback_items(plan, inv, wave)

    _gap(plan, inv, policy_set, inputs)
    translation = _policies(plan, inv, inputs["policies"], policy_set)
    _probes(plan, inv, policy_set, inputs)

    inputs["final-values"].items.extend(kubectl_jobs.restart_items(plan))
    inputs["final-values"].items.extend(jobs.final_items(plan, inv))
    inputs["nodeconfig-removal"].items.extend(kubectl_jobs.nodeconfig_removed_gate_items(plan))
    inputs["old-cni-removal"].items.extend(kubectl_jobs.removal_items(plan, inv))
    inputs["old-cni-removal"].items.extend(jobs.removal_items(plan, inv))
    return inputs, translation


def _probes(plan: Plan, inv: Inventory, policy_set, inputs: dict[str, WaveInput]) -> None:
    """The same policy probes twice: a baseline in preflight (Calico enforcing) and after the
    final values (Cilium enforcing). Any verdict that differs from Felix's fails the wave."""
    if policy_set is None or not inv.cni.enforces_policy:
        return
    felix = probes.felix_model(policy_set)
    picked = probes.pick_probes(policy_set, inv, felix)
    if not picked:
        return
    baseline = probes.probe_items(policy_set, inv, plan, "baseline", picked=picked)
    inputs["preflight"].items.extend(baseline)
    # the tree is cumulative: objects both runs share (the probe ServiceAccount) stay in preflight
    have = {_key(i.obj) for i in baseline}
    inputs["final-values"].items.extend(
        i for i in probes.probe_items(policy_set, inv, plan, "enforced", picked=picked)
        if _key(i.obj) not in have)
    matrix = probes.probe_matrix_markdown(picked)
    for key, when in (("preflight", "under Calico (baseline)"),
                      ("policies", "in preflight (baseline) and after final-values (enforced)"),
                      ("final-values", "under Cilium (enforced)")):
        inputs[key].sections.append(f"## Policy probes\n\nRun {when}; every connection must "
                                    f"get the verdict Felix predicts.\n\n{matrix}")


def _gap(plan: Plan, inv: Inventory, policy_set, inputs: dict[str, WaveInput]) -> None:
    """Per node wave: which policy-governed pods lose enforcement (generator.verify.gap)."""
    if policy_set is None or not inv.cni.enforces_policy:
        return
    for g in gap.enforcement_gap(plan, inv, policy_set):
        wave = plan.wave(g.wave)
        inputs[wave.key].sections.append(g.markdown())
        summary = (f"Enforcement gap after this wave: {g.unenforced_pods} of "
                   f"{g.governed_pods} policy-governed pods are enforced by neither Calico nor "
                   f"Cilium until final-values (namespaces: {some(g.namespaces)})"
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
    translation = translate(policy_set, cilium_version=plan.options.cilium_version,
                            approximate=plan.options.approximate, inventory=inv,
                            host_default_deny=plan.options.host_default_deny)
    items, kept = _policy_items(translation, inv)
    denied = sorted(p.name for p in translation.report.policies
                    if any(f.code == "hostendpoint-default-deny" for f in p.findings))
    if denied:
        # from final-values on, those hosts drop everything but Felix's failsafe ports
        wave.risk = "high"
        msg = (f"HIGH RISK: --host-default-deny emits Calico's default deny for "
               f"{len(denied)} HostEndpoint(s) no policy selects ({some(denied)}): once "
               "final-values enforces policy, those nodes drop all host traffic except the "
               "failsafe ports, as under Calico; check that nothing else must reach them")
        wi.notes.append(msg)
        plan.warnings.append(msg)
    wi.items.extend(items)
    if kept:
        named = some(kept, where=f"see waves/{wave.dirname}/REPORT.md")
        wi.notes.append(f"{len(kept)} Kubernetes NetworkPolicy object(s) stay as they are "
                        "(Cilium enforces them natively) and are not managed by this "
                        f"repository: {named}")
    # Cilium reports policy import errors only in agent logs (CNP status updates are off by
    # default), so no Job gates this wave; the final-values gate exercises the policies.
    wi.notes.append("no gate Job here: Cilium reports policy import errors only in agent logs; "
                    "check them before merging final-values, whose probe Job exercises the "
                    "policies")
    wi.files["REPORT.md"] = translation.report.to_markdown()
    wi.sections.append("## Translation fidelity\n\n" + translation.report.to_markdown(
        PR_ROWS, f"waves/{wave.dirname}/REPORT.md"))
    wi.notes.append(f"translation report: waves/{wave.dirname}/REPORT.md")
    result = verify(policy_set, list(translation.objects), inventory=inv,
                    declared=translation.report, max_endpoints=VERIFY_MAX_ENDPOINTS)
    if result.partial:
        wi.notes.append("verification is partial on a cluster this size (see the verification "
                        "section); run `cni-migrate verify --from SNAPSHOT` for all of it")
    wi.notes.append(f"verification: {_verify_summary(result)}")
    wi.sections.append("## Verification\n\n" + result.summary_markdown())
    if not result.ok:
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
