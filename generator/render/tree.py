"""render(): one FULL repository tree per wave, with its commit message and PR text.

Each wave adds waves/NN-key/ (one directory per step: s0-setup, s1-change, s2-work, s3-gate)
to the tree of the previous wave. Two waves edit earlier files instead, because in GitOps a
change to something already in git is an edit of that file: final-values edits
cilium/values.yaml; nodeconfig-removal deletes the CiliumNodeConfig file from wave nodeconfig.
Node waves also get a rollback branch (Commit.extra_branches).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from .. import yamlio
from ..cilium.values import Values, final_values, migration_values, render_values
from ..errors import UserError
from ..inventory.model import Inventory
from ..jobs.spec import content_named
from ..plan.model import Plan, Wave
from . import argocd, flux
from .model import STEP_CHANGE, STEP_GATE, STEP_WORK, Commit, Item
from .objects import node_label
from .templates import env

STEP_DIRS = {0: "s0-setup", 1: "s1-change", 2: "s2-work", 3: "s3-gate"}
ENGINE_NAMES = {"argocd": "Argo CD", "flux": "Flux"}
KUSTOMIZE_API = "kustomize.config.k8s.io/v1beta1"
CNI_NAMES = {"flannel": "Flannel", "canal": "Canal", "calico": "Calico",
             "calico-operator": "Calico (tigera-operator)"}


@dataclass
class WaveInput:
    """What the pipeline gives render for one wave."""
    items: list[Item] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)          # said plainly in commit and PR
    files: dict[str, str] = field(default_factory=dict)     # extra files in the wave dir (REPORT.md)
    rollback_items: list[Item] = field(default_factory=list)  # node waves: reverse runner
    sections: list[str] = field(default_factory=list)   # Markdown sections for the PR text


@dataclass
class _Step:
    items: list[Item]
    refs: list[str] = field(default_factory=list)  # kustomize resources outside the step dir


@dataclass
class _State:
    """Everything in waves/ so far: wave key -> step -> _Step."""
    waves: dict[str, dict[int, _Step]] = field(default_factory=dict)
    files: dict[str, dict[str, str]] = field(default_factory=dict)
    flux_steps: list[tuple[str, str, int]] = field(default_factory=list)  # name, path, timeout


def _kustomization(resources: list[str], **extra) -> str:
    obj = {"apiVersion": KUSTOMIZE_API, "kind": "Kustomization", **extra, "resources": resources}
    return yamlio.dump(obj)


def _filename(item: Item, taken: set[str]) -> str:
    if item.filename:
        name = item.filename
    else:
        meta = item.obj.get("metadata") or {}
        name = f"{item.obj.get('kind', 'object').lower()}-{meta.get('name', 'unnamed')}.yaml"
        if name in taken and meta.get("namespace"):
            name = f"{item.obj['kind'].lower()}-{meta['namespace']}-{meta.get('name')}.yaml"
    if name in taken:
        raise ValueError(f"two objects render to the same file {name}")  # a bug, not user input
    taken.add(name)
    return name


def _content_named(item: Item) -> Item:
    """Jobs named after their content (see jobs.spec.content_named), file name to match."""
    if item.obj.get("kind") != "Job":
        return item
    old = item.obj["metadata"]["name"]
    obj = content_named(item.obj)
    new = obj["metadata"]["name"]
    return Item(obj, item.step, item.filename.replace(old, new) if item.filename else None)


def _engine_object(plan: Plan, wave: Wave, step: int, obj: dict) -> dict:
    if plan.options.engine == "argocd":
        return argocd.annotate(obj, wave.number, step)
    return flux.annotate(obj)


def _wave_timeout_minutes(step: _Step, wave: Wave) -> int:
    """Flux timeout for one step: the longest Job deadline plus slack, else the wave estimate."""
    deadlines = [i.obj.get("spec", {}).get("activeDeadlineSeconds") or 0
                 for i in step.items if i.obj.get("kind") == "Job"]
    longest = max(deadlines, default=0)
    if longest:
        return int(longest // 60) + 10
    if step.refs:   # the Cilium HelmRelease: its own install timeout is 30m
        return max(35, wave.est_minutes * 2)
    return max(10, wave.est_minutes * 2)


class Renderer:
    def __init__(self, plan: Plan, inventory: Inventory, inputs: dict[str, WaveInput],
                 migration: Values):
        self.plan = plan
        self.inv = inventory
        self.inputs = inputs
        self.migration = migration
        self.final = final_values(migration)
        self.engine = plan.options.engine
        self.state = _State()
        self.waves_by_key = {w.key: w for w in plan.waves}
        self._cache: dict[tuple, tuple] = {}
        self._text_cache: dict[tuple, str] = {}
        # these live as long as this Renderer, i.e. one render() call
        self._files_cache: dict[tuple, dict[str, bytes]] = {}
        self._encoded: dict[str, bytes] = {}

    # ----------------------------------------------------------------- state changes per wave

    def _add_wave(self, wave: Wave) -> None:
        steps: dict[int, _Step] = {}
        for item in self.inputs.get(wave.key, WaveInput()).items:
            steps.setdefault(item.step, _Step([])).items.append(_content_named(item))
        if wave.key == "cilium-install":
            self._add_cilium(wave, steps)
        self.state.waves[wave.key] = dict(sorted(steps.items()))
        self.state.files[wave.key] = dict(self.inputs.get(wave.key, WaveInput()).files)
        if wave.key == "nodeconfig-removal" and "nodeconfig" in self.state.waves:
            for step in self.state.waves["nodeconfig"].values():
                step.items = [i for i in step.items if i.obj.get("kind") != "CiliumNodeConfig"]
        for num, step in self.state.waves[wave.key].items():
            name = f"cni-migration-{wave.dirname}-{STEP_DIRS[num][3:]}"
            self.state.flux_steps.append(
                (name, f"./waves/{wave.dirname}/{STEP_DIRS[num]}",
                 _wave_timeout_minutes(step, wave)))

    def _add_cilium(self, wave: Wave, steps: dict[int, _Step]) -> None:
        change = steps.setdefault(STEP_CHANGE, _Step([]))
        if self.engine == "argocd":
            change.items.append(Item(argocd.cilium_application(
                self.plan, self.migration.chart_version), STEP_CHANGE, "application-cilium.yaml"))
        else:
            # the HelmRelease, HelmRepository and values ConfigMap live in cilium/ (one
            # kustomize root next to values.yaml, so the ConfigMap is generated from it)
            change.refs.append("../../../cilium")

    # ----------------------------------------------------------------------- tree building

    def _values_for(self, wave: Wave) -> Values:
        fv = self.waves_by_key.get("final-values")
        return self.final if fv is not None and wave.number >= fv.number else self.migration

    def _values_text(self, values: Values) -> str:
        key = ("values", id(values))
        if key not in self._text_cache:
            self._text_cache[key] = render_values(values, cluster_name=self.plan.cluster_name)
        return self._text_cache[key]

    def _bytes(self, text: str) -> bytes:
        """The encoded text, one bytes object per distinct text for the whole render: later
        trees then share their unchanged files with earlier ones (emit skips a path whose
        content `is` the previous tree's, and hashes each object once)."""
        data = self._encoded.get(text)
        if data is None:
            data = self._encoded[text] = text.encode("utf-8")
        return data

    def _cilium_files(self, wave: Wave) -> dict[str, bytes]:
        install = self.waves_by_key.get("cilium-install")
        if install is None or wave.number < install.number:
            return {}
        key = ("cilium", self._values_text(self._values_for(wave)))
        hit = self._files_cache.get(key)
        if hit is not None:
            return hit
        out = {"cilium/values.yaml": key[1]}
        if self.engine == "flux":
            out["cilium/kustomization.yaml"] = yamlio.dump(flux.cilium_kustomization())
            out["cilium/helmrepository.yaml"] = yamlio.dump(flux.helm_repository(self.plan))
            out["cilium/helmrelease.yaml"] = yamlio.dump(
                flux.helm_release(self.plan, self.migration.chart_version))
        out = self._files_cache[key] = {p: self._bytes(t) for p, t in out.items()}
        return out

    def _bootstrap_files(self) -> dict[str, bytes]:
        # flux_steps only grows (one entry per step of each added wave): a tuple of it names
        # the bootstrap/ content exactly
        key = ("bootstrap", tuple(self.state.flux_steps) if self.engine == "flux" else ())
        hit = self._files_cache.get(key)
        if hit is not None:
            return hit
        out: dict[str, str] = {}
        if self.engine == "argocd":
            objs = argocd.bootstrap(self.plan)
            for name, obj in objs.items():
                out[f"bootstrap/{name}"] = yamlio.dump(obj)
            out["bootstrap/kustomization.yaml"] = _kustomization(sorted(objs))
            out["bootstrap/argocd-cm-patch.yaml"] = (
                "# Merge into argocd-cm by hand (see README.md); not listed in kustomization.yaml\n"
                + yamlio.dump(argocd.argocd_cm_patch(self.plan)))
        else:
            names = {"gitrepository.yaml": flux.git_repository(self.plan),
                     "kustomization-root.yaml": flux.root_kustomization(self.plan)}
            prev = None
            for name, path, timeout in self.state.flux_steps:
                names[f"steps/{name}.yaml"] = flux.kustomization(self.plan, name, path, prev,
                                                                 timeout)
                prev = name
            for fname, obj in names.items():
                out[f"bootstrap/{fname}"] = yamlio.dump(obj)
            out["bootstrap/kustomization.yaml"] = _kustomization(sorted(names))
        out = self._files_cache[key] = {p: self._bytes(t) for p, t in out.items()}
        return out

    def _step_files(self, wave: Wave, num: int, step: _Step) -> tuple[dict[str, bytes], list]:
        """Files of one step directory (path in the tree -> content) and the (namespace, name)
        of its Jobs. Cached: every later commit repeats the earlier waves unchanged, and
        dumping YAML is the costly part."""
        key = (wave.key, num, tuple(id(i) for i in step.items), tuple(step.refs))
        hit = self._cache.get(key)
        if hit is not None:
            return hit[0], hit[1]
        taken: set[str] = {"kustomization.yaml"}
        files: dict[str, str] = {}
        jobs: list[tuple] = []
        for item in step.items:
            fname = _filename(item, taken)
            obj = _engine_object(self.plan, wave, num, item.obj)
            if obj.get("kind") == "Job":
                jobs.append(((obj.get("metadata") or {}).get("namespace"),
                             obj["metadata"]["name"]))
            files[fname] = yamlio.dump(obj)
        files["kustomization.yaml"] = _kustomization(
            sorted(f for f in files if f != "kustomization.yaml") + list(step.refs))
        base = f"waves/{wave.dirname}/{STEP_DIRS[num]}/"
        out = {base + name: self._bytes(text) for name, text in files.items()}
        # keep the Items alive with the entry, so their ids cannot be reused by new objects
        self._cache[key] = (out, jobs, list(step.items))
        return out, jobs

    def _wave_files(self, wave: Wave, steps: dict[int, _Step], extra: dict[str, str],
                    jobs_out: list) -> dict[str, bytes]:
        base = f"waves/{wave.dirname}"
        out: dict[str, bytes] = {}
        for num, step in steps.items():
            files, jobs = self._step_files(wave, num, step)
            jobs_out.extend(jobs)
            out.update(files)
        out[f"{base}/kustomization.yaml"] = self._bytes(
            _kustomization([STEP_DIRS[n] for n in steps]))
        for name, text in extra.items():
            out[f"{base}/{name}"] = self._bytes(text)
        return out

    def _tree(self, current: Wave, state_waves: dict[str, dict[int, _Step]]) -> dict[str, bytes]:
        files: dict[str, bytes] = {}
        files.update(self._bootstrap_files())
        files.update(self._cilium_files(current))
        dirs = []
        jobs: list[tuple] = []
        for w in self.plan.waves[:current.number + 1]:
            files.update(self._wave_files(w, state_waves[w.key], self.state.files[w.key], jobs))
            dirs.append(w.dirname)
        files["waves/kustomization.yaml"] = self._bytes(_kustomization(dirs))
        for w in self.plan.waves[:current.number + 1]:
            files[f"pr/wave-{w.number:02d}.md"] = self._bytes(self._pr_text(w))
        files["README.md"] = self._bytes(self._readme(current))
        self._check_unique_jobs(jobs)
        return dict(sorted(files.items()))

    @staticmethod
    def _check_unique_jobs(jobs: list[tuple]) -> None:
        seen: set[tuple] = set()
        for key in jobs:
            if key in seen:
                raise ValueError(f"Job {key} appears twice: Job names must be unique per wave")
            seen.add(key)

    # ------------------------------------------------------------------------------ texts

    def _undo(self, w: Wave) -> str:
        if not w.reversible:
            return "**cannot be undone**"
        if w.nodes:
            return f"merge branch `rollback/wave-{w.number:02d}`"
        return "`git revert`" + (" + uninstall Cilium by hand" if w.key == "cilium-install" else "")

    def _diff(self, wave: Wave) -> str:
        if wave.key != "final-values":
            return ""
        a = self._values_text(self.migration).splitlines(keepends=True)
        b = self._values_text(self.final).splitlines(keepends=True)
        return "".join(difflib.unified_diff(a, b, "a/cilium/values.yaml", "b/cilium/values.yaml",
                                            n=0))

    def _gate_hint(self, wave: Wave) -> str:
        if self.engine == "argocd":
            return (f"Argo CD applies them in sync waves {wave.number * 10} to "
                    f"{wave.number * 10 + 3}; the gate Jobs must Complete.")
        return ("Flux applies one Kustomization per step (`cni-migration-"
                f"{wave.dirname}-*`), each waiting for the previous one.")

    def _notes(self, wave: Wave) -> list[str]:
        return list(self.inputs.get(wave.key, WaveInput()).notes)

    def _pr_text(self, wave: Wave) -> str:
        key = ("pr", wave.number)
        if key not in self._text_cache:
            self._text_cache[key] = self._pr(wave)
        return self._text_cache[key]

    def _pr(self, wave: Wave) -> str:
        return env().get_template("pr.md.j2").render(
            wave=wave, plan=self.plan, source_cni=CNI_NAMES.get(self.plan.source_cni,
                                                                self.plan.source_cni),
            engine_name=ENGINE_NAMES[self.engine], notes=self._notes(wave),
            diff=self._diff(wave), gate_hint=self._gate_hint(wave), undo=self._undo,
            sections=list(self.inputs.get(wave.key, WaveInput()).sections))

    def _readme(self, current: Wave) -> str:
        return env().get_template("README.md.j2").render(
            plan=self.plan, current=current, engine=self.engine,
            engine_name=ENGINE_NAMES[self.engine],
            # the input's content, not its path: a live read and its snapshot give the same SHAs
            inventory_source=f"cluster {self.inv.cluster_name}, input digest {self.inv.digest[:12]}",
            source_cni=CNI_NAMES.get(self.plan.source_cni, self.plan.source_cni),
            chart_version=self.migration.chart_version)

    def _commit_body(self, wave: Wave) -> str:
        return env().get_template("commit.txt.j2").render(wave=wave, notes=self._notes(wave))

    # ------------------------------------------------------------------------------ rollback

    def _rollback_tree(self, wave: Wave) -> dict[str, bytes] | None:
        if not wave.nodes:
            return None
        # only this wave's steps change: the others are shared, so their rendered files come
        # from the cache
        waves = dict(self.state.waves)
        back = [_content_named(i) for i in self.inputs.get(wave.key, WaveInput()).rollback_items]
        steps: dict[int, _Step] = {}
        for num, step in self.state.waves[wave.key].items():
            if num == STEP_CHANGE:
                # keep the manifests, drop the label: the engine removes the label it owns
                items = [Item(node_label(i.obj["metadata"]["name"], labelled=False),
                              i.step, i.filename) if i.obj.get("kind") == "Node" else i
                         for i in step.items]
            elif num in (STEP_WORK, STEP_GATE):
                items = [i for i in back if i.step == num]
            else:
                items = list(step.items)
            steps[num] = _Step(items, list(step.refs))
        waves[wave.key] = steps
        return self._tree(wave, waves)

    def commits(self) -> list[Commit]:
        out: list[Commit] = []
        for wave in self.plan.waves:
            self._add_wave(wave)
            tree = self._tree(wave, self.state.waves)
            extra = {}
            rb = self._rollback_tree(wave)
            if rb is not None:
                extra[f"rollback/wave-{wave.number:02d}"] = rb
            out.append(Commit(wave=wave, subject=f"wave {wave.number:02d}: {wave.title}",
                              body=self._commit_body(wave), tree=tree,
                              pr_description=self._pr_text(wave), extra_branches=extra))
        return out


def render(plan: Plan, inventory: Inventory, translation=None, *,
           inputs: dict[str, WaveInput] | None = None, values: Values | None = None
           ) -> list[Commit]:
    """One Commit per wave of the plan, each holding the whole repository tree after it.

    inputs: per wave key, the objects (Items) and notes the pipeline gathered.
    values: the migration values; by default built from the plan and translation.helm_values.
    """
    if plan.options.engine not in ENGINE_NAMES:
        raise UserError(f"unknown engine {plan.options.engine!r}: choose argocd or flux",
                        field="--engine")
    if values is None:
        helm = getattr(translation, "helm_values", None) if translation is not None else None
        values = migration_values(plan, helm)
    return Renderer(plan, inventory, inputs or {}, values).commits()
