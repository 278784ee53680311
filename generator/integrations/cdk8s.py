"""The migration as cdk8s constructs: one Chart per wave (`pip install 'cni-migrate[cdk8s]'`).

Nothing is rendered twice. The charts are filled from the very trees `generate` commits
(generator.pipeline.build -> Commits): for wave N, the objects kustomize would build from
waves/NN-<key>/ in commit N's tree, followed through its kustomization.yaml files (step
directories and what the wave references elsewhere, e.g. Flux's cilium/), plus the objects of
earlier waves that commit N changes (final-values edits cilium/values.yaml). Each object is
wrapped unchanged in an ApiObject whose whole body is set by JSON patch, so cdk8s's metadata
handling cannot reshape it. Deletions cannot be expressed in cdk8s: removed_objects lists them.

Synthesis must keep objects with the same kind and name in different namespaces apart:
YamlOutputType.FILE_PER_CHART (the default here) and FILE_PER_APP do; FILE_PER_RESOURCE and
FOLDER_PER_CHART_FILE_PER_RESOURCE name files <kind>.<name> and silently keep only one of them,
so add_waves refuses those when a collision would happen.

cdk8s is imported only inside functions here (it starts node through jsii).
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..render.model import Commit
from ..yamlio import load_text

KUSTOMIZATION = "kustomization.yaml"
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class WaveObject:
    path: str       # file in the repository tree it came from
    obj: dict


def wave_objects(commit: Commit, previous: Commit | None = None) -> list[WaveObject]:
    """The Kubernetes objects of one wave (pure: no cdk8s): what kustomize builds from
    waves/NN-<key>/, then, given the previous commit, every object the wave changed elsewhere
    (e.g. final-values edits cilium/values.yaml, so Flux's generated values ConfigMap changes)."""
    if previous is None:
        return _wave_objects(commit, None, None)
    return _wave_objects(commit, _build_all(previous.tree), _build_all(commit.tree))


def _wave_objects(commit: Commit, before_all: list[WaveObject] | None,
                  now_all: list[WaveObject] | None) -> list[WaveObject]:
    base = f"waves/{commit.wave.dirname}"
    out: list[WaveObject] = []
    if f"{base}/{KUSTOMIZATION}" in commit.tree:
        _kustomize(commit.tree, base, out, seen=set())
    if before_all is not None and now_all is not None:
        before = {_key(w.obj): w.obj for w in before_all}
        own = {_key(w.obj) for w in out}
        out += [w for w in now_all if _key(w.obj) not in own
                and _key(w.obj) in before and before[_key(w.obj)] != w.obj]
    return out


def removed_objects(commit: Commit, previous: Commit) -> list[dict]:
    """Objects the wave deletes (e.g. nodeconfig-removal): in GitOps the engine prunes them;
    cdk8s cannot express a deletion, so they are listed for the operator to delete."""
    now = {_key(w.obj) for w in _build_all(commit.tree)}
    return [w.obj for w in _build_all(previous.tree) if _key(w.obj) not in now]


def _build_all(tree: dict[str, bytes]) -> list[WaveObject]:
    out: list[WaveObject] = []
    if f"waves/{KUSTOMIZATION}" in tree:
        _kustomize(tree, "waves", out, seen=set())
    return out


def _key(obj: dict) -> tuple[str, str, str, str]:
    meta = obj.get("metadata") or {}
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    return (group, str(obj.get("kind")), meta.get("namespace") or "", meta.get("name") or "")


# Kinds kustomize's namespace transformer leaves alone (cluster-scoped), among those rendered.
CLUSTER_SCOPED = frozenset({
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "Node",
    "CiliumClusterwideNetworkPolicy", "CiliumCIDRGroup", "PriorityClass",
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
})
_SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "configMapGenerator"}


def _kustomize(tree: dict[str, bytes], directory: str, out: list[WaveObject],
               seen: set[str]) -> None:
    """What `kustomize build directory` gives for the features the renderer uses: resources
    (files and directories), namespace, configMapGenerator (files, literals, labels,
    disableNameSuffixHash). Anything else is refused rather than approximated."""
    kfile = f"{directory}/{KUSTOMIZATION}"
    if kfile in seen:
        return
    seen.add(kfile)
    docs = load_text(tree[kfile].decode("utf-8"), kfile)
    if len(docs) != 1:
        raise ValueError(f"{kfile}: expected one Kustomization document")
    kust = docs[0].obj
    unsupported = sorted(set(kust) - _SUPPORTED)
    if unsupported:
        raise ValueError(f"{kfile}: kustomize fields {unsupported} are not supported by the "
                         "cdk8s integration")
    here: list[WaveObject] = []
    for ref in kust.get("resources") or []:
        path = posixpath.normpath(posixpath.join(directory, ref))
        if path in tree:
            text = tree[path].decode("utf-8")
            here.extend(WaveObject(path, item.obj) for item in load_text(text, path))
        elif f"{path}/{KUSTOMIZATION}" in tree:
            _kustomize(tree, path, here, seen)
        else:
            raise ValueError(f"{kfile}: resource {ref} is not in the tree")
    for gen in kust.get("configMapGenerator") or []:
        here.append(WaveObject(kfile, _generated_configmap(tree, directory, kfile, gen)))
    namespace = kust.get("namespace")
    if namespace:
        here = [WaveObject(w.path, _with_namespace(w.obj, namespace))
                if w.obj.get("kind") not in CLUSTER_SCOPED else w for w in here]
    out.extend(here)


def _generated_configmap(tree: dict[str, bytes], directory: str, kfile: str, gen: dict) -> dict:
    options = gen.get("options") or {}
    if not options.get("disableNameSuffixHash"):
        # the hash suffix is kustomize's own algorithm; the renderer always disables it
        raise ValueError(f"{kfile}: configMapGenerator {gen.get('name')} needs "
                         "options.disableNameSuffixHash: true for the cdk8s integration")
    data: dict[str, str] = {}
    for lit in gen.get("literals") or []:
        key, _, value = str(lit).partition("=")
        data[key] = value
    for spec in gen.get("files") or []:
        key, _, rel = str(spec).rpartition("=") if "=" in str(spec) else ("", "", str(spec))
        path = posixpath.normpath(posixpath.join(directory, rel))
        if path not in tree:
            raise ValueError(f"{kfile}: configMapGenerator file {rel} is not in the tree")
        data[key or posixpath.basename(rel)] = tree[path].decode("utf-8")
    meta: dict = {"name": gen["name"]}
    if gen.get("namespace"):
        meta["namespace"] = gen["namespace"]
    if options.get("labels"):
        meta["labels"] = dict(options["labels"])
    if options.get("annotations"):
        meta["annotations"] = dict(options["annotations"])
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def _with_namespace(obj: dict, namespace: str) -> dict:
    return {**obj, "metadata": {**(obj.get("metadata") or {}), "namespace": namespace}}


def add_waves(app, commits: list[Commit], *, chain: bool = False) -> list:
    """Add one Chart per wave to a cdk8s App, named by the wave directory ("00-preflight"...),
    so the files sort in wave order. commits: every wave from the first, in order (a chart
    also carries what its commit changed in earlier waves' objects).

    chain=True makes each chart depend on the previous one (cdk8s then prefixes file names
    with an index). It is off by default: cdk8s resolves chart dependencies object by object
    and took ~55 s to synthesize an 11-wave plan with it, ~2 s without."""
    from cdk8s import ApiObject, Chart, JsonPatch, YamlOutputType

    per_resource = app.yaml_output_type in (YamlOutputType.FILE_PER_RESOURCE,
                                              YamlOutputType.FOLDER_PER_CHART_FILE_PER_RESOURCE)
    across_charts = app.yaml_output_type == YamlOutputType.FILE_PER_RESOURCE
    file_names: dict[str, str] = {}
    charts = []
    builds = [_build_all(c.tree) for c in commits]   # each tree parsed once
    for n, commit in enumerate(commits):
        chart = Chart(app, commit.wave.dirname)
        if chain and charts:
            chart.add_dependency(charts[-1])
        if not across_charts:
            file_names = {}
        objects = _wave_objects(commit, builds[n - 1] if n else None, builds[n])
        for i, wo in enumerate(objects):
            obj = wo.obj
            meta = obj.get("metadata") or {}
            if per_resource:
                _check_file_name(file_names, obj, wo.path)
            api = ApiObject(chart, _construct_id(i, obj), api_version=obj["apiVersion"],
                            kind=obj["kind"], metadata={"name": meta.get("name"),
                                                        **({"namespace": meta["namespace"]}
                                                           if meta.get("namespace") else {})})
            # Replace every top-level field with the rendered value, so the synthesized object
            # is exactly the committed one (cdk8s would drop empty label maps, for instance).
            api.add_json_patch(JsonPatch.replace("/metadata", meta))
            for key, value in obj.items():
                if key not in ("apiVersion", "kind", "metadata"):
                    api.add_json_patch(JsonPatch.add(f"/{key}", value))
        charts.append(chart)
    return charts


def synth(inventory, options, outdir: str | Path) -> list[Path]:
    """Build the plan and write one <NN-key>.k8s.yaml per wave into outdir."""
    from cdk8s import App, YamlOutputType

    from ..pipeline import build
    _, commits = build(inventory, options)
    app = App(outdir=str(outdir), yaml_output_type=YamlOutputType.FILE_PER_CHART)
    add_waves(app, commits)
    app.synth()
    return sorted(Path(outdir).glob(f"*{app.output_file_extension}"))


def _construct_id(index: int, obj: dict) -> str:
    meta = obj.get("metadata") or {}
    parts = [obj.get("kind", "object"), meta.get("namespace") or "", meta.get("name") or ""]
    return f"{index:04d}-" + _ID_UNSAFE.sub("-", "-".join(p for p in parts if p))


def _check_file_name(taken: dict[str, str], obj: dict, path: str) -> None:
    meta = obj.get("metadata") or {}
    # cdk8s names these files <kind>.<name> (namespace not included)
    name = f"{obj.get('kind')}.{meta.get('name')}"
    if name in taken:
        raise UserError(f"{obj.get('kind')} {meta.get('name')} appears twice (also in "
                        f"{taken[name]}): this YamlOutputType writes both to {name}.k8s.yaml "
                        "and keeps one; use YamlOutputType.FILE_PER_CHART", file=path)
    taken[name] = path
