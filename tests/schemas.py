"""Schema validation for generated Kubernetes objects (tests only).

    from tests.schemas import validate, problems
    validate(obj, cilium_version="1.18")      # raises AssertionError listing every problem
    problems(obj, cilium_version="1.18")      # -> list[str], empty when valid

What is checked
- Cilium CRDs (CNP, CCNP, CiliumNodeConfig, CiliumCIDRGroup) against the openAPIV3Schema of the
  release for that minor (/work/shared/cilium/crds: 1.18 = v2/ (1.18.3), others by-version/).
- Calico storage CRDs (crd.projectcalico.org/v1, Calico 3.30) when an object is one.
- Argo CD (Application, AppProject) and Flux (Kustomization, HelmRelease, HelmRepository,
  GitRepository, OCIRepository) against /work/shared/gitops/crds.
- Core kinds (Job, Pod, DaemonSet, Deployment, ConfigMap, ServiceAccount, Role, ClusterRole,
  RoleBinding, ClusterRoleBinding, Node, Namespace, NetworkPolicy, Service, Secret, ...) against
  the kubernetes package's model classes (openapi_types/attribute_map).
- kustomize's own kustomization.yaml (kustomize.config.k8s.io/v1beta1 Kustomization): known keys.

Like `kubectl apply` with strict field validation, unknown fields are rejected everywhere
(for CRDs: objects that list `properties` and do not preserve unknown fields), as are wrong types
and missing required fields. metadata is checked with V1ObjectMeta and must have a name.
"""
from __future__ import annotations

import copy
import functools
import ipaddress
import os
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CNI_MIGRATE_SHARED", ROOT.parent / "shared"))

# Cilium minor -> directory holding that release's CRDs
CILIUM_CRD_DIRS = {
    "1.14": "by-version/v1.14.10",
    "1.15": "by-version/v1.15.4",
    "1.16": "by-version/v1.16.12",
    "1.17": "by-version/v1.17.6",
    "1.18": "v2",
    "1.19": "by-version/v1.19.4",
}

# Calico storage CRDs (crd.projectcalico.org/v1), for objects that patch or bridge Calico
CALICO_CRD_DIR = "v1-v3.30.0"

# (group, kind) of core kinds -> kubernetes client model class name prefix per version
CORE_GROUPS = {
    "": {"Namespace", "Node", "Pod", "ConfigMap", "Secret", "Service", "ServiceAccount",
         "Endpoints", "PersistentVolumeClaim", "LimitRange", "ResourceQuota"},
    "apps": {"DaemonSet", "Deployment", "StatefulSet", "ReplicaSet"},
    "batch": {"Job", "CronJob"},
    "rbac.authorization.k8s.io": {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"},
    "networking.k8s.io": {"NetworkPolicy", "Ingress", "IngressClass"},
    "policy": {"PodDisruptionBudget"},
    "scheduling.k8s.io": {"PriorityClass"},
    "coordination.k8s.io": {"Lease"},
}

KUSTOMIZE_KEYS = {
    "apiVersion", "kind", "metadata", "resources", "namespace", "namePrefix", "nameSuffix",
    "commonLabels", "labels", "commonAnnotations", "patches", "patchesStrategicMerge",
    "patchesJson6902", "configMapGenerator", "secretGenerator", "generatorOptions", "images",
    "components", "crds", "replicas", "replacements", "vars", "generators", "transformers",
    "buildMetadata", "openapi", "helmCharts", "sortOptions",
}


def _split_api_version(api_version: str) -> tuple[str, str]:
    if "/" in api_version:
        g, v = api_version.split("/", 1)
        return g, v
    return "", api_version


# ---------------------------------------------------------------------------------------- CRDs

def _strict(schema):
    """Copy of an openAPIV3Schema with unknown fields rejected (additionalProperties: false on
    every object that lists properties and does not preserve unknown fields)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        # only real object schemas: anyOf/oneOf branches also list "properties" (to name the
        # field they require) but carry no "type"
        if ("properties" in out and out.get("type") == "object"
                and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _crd_files(cilium_version: str) -> list[Path]:
    if cilium_version not in CILIUM_CRD_DIRS:
        raise ValueError(f"no Cilium CRDs for {cilium_version}; known: {sorted(CILIUM_CRD_DIRS)}")
    cdir = SHARED / "cilium" / "crds" / CILIUM_CRD_DIRS[cilium_version]
    return (sorted(cdir.rglob("*.yaml")) + sorted((SHARED / "gitops" / "crds").glob("*.yaml"))
            + sorted((SHARED / "calico" / "crds" / CALICO_CRD_DIR).glob("*.yaml")))


@functools.lru_cache(maxsize=None)
def _crd_schemas(cilium_version: str) -> dict:
    """(group, version, kind) -> (strict schema, scope) for every CRD known at this version."""
    out = {}
    for f in _crd_files(cilium_version):
        for doc in yaml.load_all(f.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for v in spec["versions"]:
                if not v.get("served", True):
                    continue
                schema = ((v.get("schema") or {}).get("openAPIV3Schema")) or {"type": "object"}
                out[(spec["group"], v["name"], spec["names"]["kind"])] = (
                    _strict(schema), spec["scope"])
    return out


def _format_checker():
    import jsonschema

    checker = jsonschema.FormatChecker()

    @checker.checks("cidr", raises=ValueError)
    def _cidr(value):  # noqa: ANN001 - jsonschema callback
        if not isinstance(value, str):
            return True
        ipaddress.ip_network(value, strict=False)
        if "/" not in value:
            raise ValueError("not a CIDR")
        return True

    return checker


@functools.lru_cache(maxsize=None)
def _validator(cilium_version: str, key: tuple):
    import jsonschema

    schema, _ = _crd_schemas(cilium_version)[key]
    schema = copy.deepcopy(schema)
    # metadata is checked with V1ObjectMeta instead (CRD schemas say only "type: object")
    schema.get("properties", {}).pop("metadata", None)
    schema.get("properties", {})["metadata"] = {"type": "object"}
    return jsonschema.Draft7Validator(schema, format_checker=_format_checker())


def _crd_problems(obj: dict, key: tuple, cilium_version: str) -> list[str]:
    v = _validator(cilium_version, key)
    out = []
    for e in sorted(v.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        path = ".".join(str(p) for p in e.absolute_path) or "<root>"
        out.append(f"{path}: {e.message[:300]}")
    return out


# ------------------------------------------------------------------------------- core models

@functools.lru_cache(maxsize=None)
def _model(name: str):
    import kubernetes.client as kc

    return getattr(kc, name, None)


@functools.lru_cache(maxsize=None)
def _required(name: str) -> frozenset:
    """Python attribute names a model class requires (its setters reject None)."""
    import inspect

    cls = _model(name)
    fields = getattr(cls, "model_fields", None)  # kubernetes >= 33: pydantic models
    if fields is not None:
        return frozenset(a for a, f in fields.items() if f.is_required())
    try:
        src = inspect.getsource(cls)
    except (OSError, TypeError):
        return frozenset()
    return frozenset(re.findall(r"Invalid value for `(\w+)`, must not be `None`", src))


_QUANTITY_PARENTS = {"limits", "requests", "capacity", "allocatable", "hard", "overhead"}


def _check_value(value, typ: str, path: str, out: list[str], parent_key: str = "") -> None:
    if value is None:
        return  # null means "unset" in Kubernetes JSON
    if typ == "object":
        return
    if typ.startswith(("list[", "List[")):
        if not isinstance(value, list):
            out.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        inner = typ[5:-1]
        for i, item in enumerate(value):
            _check_value(item, inner, f"{path}[{i}]", out)
        return
    if typ.startswith(("dict(", "Dict[")):
        if not isinstance(value, dict):
            out.append(f"{path}: expected a mapping, got {type(value).__name__}")
            return
        inner = typ[typ.index(",") + 1:-1].strip()
        for k, item in value.items():
            if not isinstance(k, str):
                out.append(f"{path}: key {k!r} is not a string")
            if inner == "str" and parent_key in _QUANTITY_PARENTS \
                    and isinstance(item, (int, float)) and not isinstance(item, bool):
                continue  # a Quantity may be written as a number
            _check_value(item, inner, f"{path}.{k}", out)
        return
    if typ == "str" or typ == "datetime" or typ == "date":
        if not isinstance(value, str):
            out.append(f"{path}: expected a string, got {type(value).__name__} {value!r}")
        return
    if typ == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            out.append(f"{path}: expected an integer, got {type(value).__name__} {value!r}")
        return
    if typ == "float":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            out.append(f"{path}: expected a number, got {type(value).__name__} {value!r}")
        return
    if typ == "bool":
        if not isinstance(value, bool):
            out.append(f"{path}: expected a boolean, got {type(value).__name__} {value!r}")
        return
    cls = _model(typ)
    if cls is None:
        return  # a type this client does not describe: accept
    _check_model(value, typ, path, out)


def _check_model(value, name: str, path: str, out: list[str]) -> None:
    cls = _model(name)
    if not isinstance(value, dict):
        out.append(f"{path}: expected a mapping ({name}), got {type(value).__name__}")
        return
    json_to_attr = {j: a for a, j in cls.attribute_map.items()}
    for key, item in value.items():
        attr = json_to_attr.get(key)
        if attr is None:
            out.append(f"{path}.{key}: unknown field for {name}")
            continue
        _check_value(item, cls.openapi_types[attr], f"{path}.{key}", out, parent_key=key)
    for attr in sorted(_required(name)):
        if value.get(cls.attribute_map[attr]) is None:
            out.append(f"{path}.{cls.attribute_map[attr]}: required field missing ({name})")


def _core_class(group: str, version: str, kind: str) -> str | None:
    if kind not in CORE_GROUPS.get(group, ()):
        return None
    name = f"{version[:1].upper()}{version[1:]}{kind}"
    return name if _model(name) is not None else None


# -------------------------------------------------------------------------------- entry points

def problems(obj: dict, cilium_version: str = "1.18") -> list[str]:
    """Every schema problem of one object; empty list when it is valid."""
    if not isinstance(obj, dict):
        return [f"not a mapping: {type(obj).__name__}"]
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return ["apiVersion and kind must both be strings"]
    group, version = _split_api_version(api_version)
    label = f"{kind} {((obj.get('metadata') or {}).get('name'))}"
    out: list[str] = []

    if group == "kustomize.config.k8s.io" and kind in ("Kustomization", "Component"):
        out += [f"{k}: unknown kustomization field" for k in obj if k not in KUSTOMIZE_KEYS]
        for field in ("resources", "components", "patches"):
            if field in obj and not isinstance(obj[field], list):
                out.append(f"{field}: expected a list")
        return [f"{label}: {p}" for p in out]

    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not (meta.get("name") or meta.get("generateName")):
        out.append("metadata.name: required")
    if isinstance(meta, dict):
        _check_model(meta, "V1ObjectMeta", "metadata", out)

    core = _core_class(group, version, kind)
    if core is not None:
        _check_model(obj, core, "", out)
        out = [p.lstrip(".") for p in out]
    else:
        key = (group, version, kind)
        if key not in _crd_schemas(cilium_version):
            known = sorted(f"{g}/{v} {k}" if g else f"{v} {k}" for g, v, k in _crd_schemas(cilium_version))
            return [f"{label}: no schema for {api_version} {kind} (Cilium {cilium_version}); "
                    f"known CRDs: {', '.join(known)}"]
        out += _crd_problems(obj, key, cilium_version)
    return [f"{label}: {p}" for p in out]


def validate(obj: dict, cilium_version: str = "1.18") -> None:
    """Raise AssertionError naming every problem if obj is not a valid object."""
    found = problems(obj, cilium_version)
    if found:
        raise AssertionError("invalid object:\n  " + "\n  ".join(found))


def validate_all(objs, cilium_version: str = "1.18") -> None:
    found = [p for o in objs for p in problems(o, cilium_version)]
    if found:
        raise AssertionError("invalid objects:\n  " + "\n  ".join(found))


def scope(obj: dict, cilium_version: str = "1.18") -> str | None:
    """'Namespaced' or 'Cluster' for a CRD kind known to the validator (None if unknown)."""
    group, version = _split_api_version(obj.get("apiVersion", ""))
    hit = _crd_schemas(cilium_version).get((group, version, obj.get("kind")))
    return hit[1] if hit else None
