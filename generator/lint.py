"""Checks on an output tree: what the migration asks a cluster to run must be safe to run.

- every pod spec (Pod, Deployment, DaemonSet, StatefulSet, ReplicaSet, Job, CronJob) meets Pod
  Security "restricted" plus a read-only root filesystem; an object may opt out only with the
  annotation cni-migrate.io/pss-exception: <reason> (e.g. the per-node runner needs the host);
- RBAC rules use no wildcards and grant nothing on secrets; bindings never grant the built-in
  cluster-admin/admin/edit roles;
- images are pinned (a tag other than latest, or a digest) and, when the tree records the
  configured images (.cni-migrate/state.json "images"), come from that set;
- nothing looks like a credential: private key blocks, well-known token formats, password or
  token fields with literal values, Secrets carrying data.

Pure: lint_tree(root) reads files and returns findings; the command prints them.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError, object_name
from .yamlio import YAML_SUFFIXES, Loaded, dump, load_text

EXCEPTION_ANNOTATION = "cni-migrate.io/pss-exception"

# Restricted allows only these volume types (Pod Security Standards, "Volume Types").
ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                   "persistentVolumeClaim", "projected", "secret"}
VOLUME_META = {"name"}
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range",
                "net.ipv4.ip_unprivileged_port_start", "net.ipv4.tcp_syncookies",
                "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t",
                 "container_engine_t"}
BROAD_ROLES = {"cluster-admin", "admin", "edit"}

WORKLOAD_TEMPLATE = {"Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job",
                     "ReplicationController"}

PRIVATE_KEY = re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY( BLOCK)?-----")
TOKEN_PATTERNS = [
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"), "a GitHub token"),
    (re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}\b"), "a GitLab token"),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"), "a Slack token"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
     "a JSON web token"),
]
# Necessary conditions for the patterns above: the same without their leading \b, which
# keeps re from scanning for their literal prefix (25x slower on the PR texts).
_HINTS = [re.compile(rx.pattern.removeprefix(r"\b")) for rx in
          [PRIVATE_KEY] + [rx for rx, _ in TOKEN_PATTERNS]]
# Keys whose literal string value is a credential; names/paths/refs of credentials are fine.
SECRET_KEY = re.compile(r"(?i)^(password|passwd|secret|token|bearertoken|apikey|api_key|"
                        r"api-key|accesskey|access_key|secretkey|secret_key|clientsecret|"
                        r"client_secret|privatekey|private_key|credentials?)$")
PLACEHOLDER = re.compile(r"^(\$\{.*\}|\{\{.*\}\}|<.*>|\*+|changeme|REPLACE.*|)$", re.I)


@dataclass(frozen=True, order=True)
class Finding:
    file: str
    obj: str
    what: str

    def line(self) -> str:
        return f"{self.file}: {self.obj}: {self.what}" if self.obj else f"{self.file}: {self.what}"


def lint_tree(root) -> list[Finding]:
    """Every finding in the tree under root (skipping .git and other hidden directories)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError("not a directory", file=str(root))
    files: dict[str, bytes] = {}
    unreadable: list[Finding] = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or any(p.startswith(".") and p != ".cni-migrate"
                                     for p in rel.parts):
            continue
        try:
            files[rel.as_posix()] = path.read_bytes()
        except OSError as e:
            unreadable.append(Finding(rel.as_posix(), "", f"cannot read: {e.strerror}"))
    return sorted(set(unreadable + lint_files(files)))


def lint_files(files: dict[str, bytes], images: dict[str, str] | None = None) -> list[Finding]:
    """Every finding in an in-memory tree (path -> content), sorted by file then object.
    images: the configured images; default: those recorded in .cni-migrate/state.json."""
    configured = ({str(v) for v in images.values()} if images is not None
                  else _configured_images(files.get(".cni-migrate/state.json")))
    findings: list[Finding] = []
    for rel in sorted(files):
        text = files[rel].decode("utf-8", errors="replace")
        findings += _text_secrets(rel, text)
        if rel.endswith(YAML_SUFFIXES):
            try:
                loaded = _load(text, rel)
            except UserError as e:
                findings.append(Finding(e.file or rel, "", e.message))
                continue
            for item in loaded:
                findings += lint_object(item, configured)
    return sorted(set(findings))


def lint_object(item: Loaded, configured: set[str] | None = None) -> list[Finding]:
    name = object_name(item.obj) if item.obj.get("kind") else ""  # e.g. a Helm values file
    return [Finding(item.where, name, w) for w in _object_problems(item.obj, configured)]


def _object_problems(obj: dict, configured: set[str] | None) -> list[str]:
    kind = obj.get("kind")
    problems: list[str] = []
    spec, template_meta = _pod_spec(obj)
    if spec is not None:
        if not _exception(obj, template_meta):
            problems += _pss(spec)
            if _has_annotation(obj, template_meta):
                problems.append(f"{EXCEPTION_ANNOTATION} needs a reason")
        problems += _images(spec, configured)
    else:  # Helm values, HelmRelease/Application values, anything else naming images
        problems += _loose_images(obj, "")
    if kind in ("Role", "ClusterRole"):
        problems += _rbac_rules(obj.get("rules") or [])
    if kind in ("RoleBinding", "ClusterRoleBinding"):
        ref = obj.get("roleRef") or {}
        if ref.get("kind") == "ClusterRole" and ref.get("name") in BROAD_ROLES:
            problems.append(f"binds the built-in ClusterRole {ref['name']} (too broad)")
    if kind == "Secret" and (obj.get("data") or obj.get("stringData")):
        problems.append("Secret with data committed to git")
    problems += _field_secrets(obj, "")
    return problems


# --- pod specs ------------------------------------------------------------------------------

def _pod_spec(obj: dict) -> tuple[dict | None, dict]:
    kind = obj.get("kind")
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    if kind == "Pod":
        return spec, {}
    if kind == "PodTemplate":
        tpl = obj.get("template") or {}
        return tpl.get("spec") or {}, tpl.get("metadata") or {}
    if kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec") or {})
    elif kind not in WORKLOAD_TEMPLATE:
        return None, {}
    tpl = spec.get("template") or {}
    return (tpl.get("spec") or {}), (tpl.get("metadata") or {})


def _exception(obj: dict, template_meta: dict) -> str:
    for meta in (obj.get("metadata") or {}, template_meta):
        reason = str((meta.get("annotations") or {}).get(EXCEPTION_ANNOTATION, "")).strip()
        if reason:
            return reason
    return ""


def _has_annotation(obj: dict, template_meta: dict) -> bool:
    return any(EXCEPTION_ANNOTATION in (m.get("annotations") or {})
               for m in (obj.get("metadata") or {}, template_meta))


def _containers(spec: dict):
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(field) or []:
            if isinstance(c, dict):
                yield c


def _pss(spec: dict) -> list[str]:
    """Pod Security "restricted" (and the baseline it includes), plus readOnlyRootFilesystem."""
    p: list[str] = []
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(host):
            p.append(f"{host}: true")
    psc = spec.get("securityContext") or {}
    for v in spec.get("volumes") or []:
        kinds = sorted(set(v) - VOLUME_META)
        bad = [k for k in kinds if k not in ALLOWED_VOLUMES]
        if bad:
            p.append(f"volume {v.get('name')}: {', '.join(bad)} not allowed (restricted)")
    for s in psc.get("sysctls") or []:
        if s.get("name") not in SAFE_SYSCTLS:
            p.append(f"unsafe sysctl {s.get('name')}")
    if (psc.get("seLinuxOptions") or {}).get("type", "") not in SELINUX_TYPES:
        p.append("pod seLinuxOptions.type not allowed")
    pod_nonroot = psc.get("runAsNonRoot") is True
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    if pod_seccomp not in (None, "RuntimeDefault", "Localhost"):
        p.append(f"pod seccompProfile {pod_seccomp}")
    if psc.get("runAsUser") == 0:
        p.append("pod runAsUser: 0")
    if (psc.get("appArmorProfile") or {}).get("type") == "Unconfined":
        p.append("pod appArmorProfile Unconfined")
    for c in _containers(spec):
        n = f"container {c.get('name')}"
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            p.append(f"{n}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            p.append(f"{n}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            p.append(f"{n}: capabilities must drop ALL")
        added = [a for a in caps.get("add") or [] if a != "NET_BIND_SERVICE"]
        if added:
            p.append(f"{n}: adds capabilities {', '.join(map(str, added))}")
        nonroot = sc["runAsNonRoot"] if "runAsNonRoot" in sc else pod_nonroot
        if nonroot is not True:
            p.append(f"{n}: runAsNonRoot must be true")
        if sc.get("runAsUser") == 0:
            p.append(f"{n}: runAsUser: 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            p.append(f"{n}: seccompProfile must be RuntimeDefault (or Localhost)")
        if sc.get("readOnlyRootFilesystem") is not True:
            p.append(f"{n}: readOnlyRootFilesystem must be true")
        if sc.get("procMount") not in (None, "Default"):
            p.append(f"{n}: procMount {sc['procMount']}")
        if (sc.get("seLinuxOptions") or {}).get("type", "") not in SELINUX_TYPES:
            p.append(f"{n}: seLinuxOptions.type not allowed")
        if (sc.get("appArmorProfile") or {}).get("type") == "Unconfined":
            p.append(f"{n}: appArmorProfile Unconfined")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                p.append(f"{n}: hostPort {port['hostPort']}")
    return p


def _images(spec: dict, configured: set[str] | None) -> list[str]:
    p: list[str] = []
    for c in _containers(spec):
        image = str(c.get("image") or "")
        n = f"container {c.get('name')}"
        if not image:
            p.append(f"{n}: no image")
            continue
        problem = _image_problem(image)
        if problem:
            p.append(f"{n}: {problem}")
        if configured is not None and image not in configured:
            p.append(f"{n}: image {image} is not one of the configured images (--image)")
    return p


def _image_problem(image: str) -> str | None:
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    if tag == "latest":
        return f"image {image} uses :latest"
    if not tag and not digest:
        return f"image {image} has no tag or digest (means :latest)"
    return None


def _loose_images(node, path: str) -> list[str]:
    """`image: ref` strings and `tag: latest` anywhere outside pod specs (e.g. Helm values)."""
    p: list[str] = []
    if isinstance(node, dict):
        for k, v in node.items():
            sub = f"{path}.{k}" if path else str(k)
            if k == "image" and isinstance(v, str) and "/" in v:
                problem = _image_problem(v)
                if problem:
                    p.append(f"{sub}: {problem}")
            elif k == "tag" and v == "latest":
                p.append(f"{sub}: image tag latest")
            elif isinstance(v, (dict, list)):
                p += _loose_images(v, sub)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            p += _loose_images(v, f"{path}[{i}]")
    return p


# --- RBAC -----------------------------------------------------------------------------------

def _rbac_rules(rules: list) -> list[str]:
    p: list[str] = []
    for i, r in enumerate(rules):
        if not isinstance(r, dict):
            continue
        at = f"rules[{i}]"
        for field in ("verbs", "resources", "apiGroups", "nonResourceURLs", "resourceNames"):
            values = [str(v) for v in r.get(field) or []]
            if any(v == "*" or v.startswith("*/") or v.endswith("/*") for v in values):
                p.append(f"{at}: wildcard in {field}")
        groups = r.get("apiGroups") or []
        resources = [str(v).split("/", 1)[0] for v in r.get("resources") or []]
        if ("" in groups or "*" in groups) and ("secrets" in resources or "*" in resources):
            p.append(f"{at}: grants access to secrets")
        risky = [v for v in r.get("verbs") or [] if v in ("escalate", "bind", "impersonate")]
        if risky:
            p.append(f"{at}: verbs {', '.join(risky)} allow privilege escalation")
    return p


# --- credentials ----------------------------------------------------------------------------

def _text_secrets(file: str, text: str) -> list[Finding]:
    # None of the patterns can match across a line break, so a text with no match as a whole
    # has none on any line: one search per pattern instead of one per pattern and line.
    if not any(rx.search(text) for rx in _HINTS):
        return []
    out = []
    for i, line in enumerate(text.splitlines(), start=1):
        if PRIVATE_KEY.search(line):
            out.append(Finding(f"{file}:{i}", "", "private key block"))
        for rx, what in TOKEN_PATTERNS:
            if rx.search(line):
                out.append(Finding(f"{file}:{i}", "", f"looks like {what}"))
    return out


def _field_secrets(node, path: str) -> list[str]:
    p: list[str] = []
    if isinstance(node, dict):
        for k, v in node.items():
            sub = f"{path}.{k}" if path else str(k)
            if isinstance(v, str) and SECRET_KEY.match(str(k)) and not PLACEHOLDER.match(v.strip()):
                p.append(f"{sub} holds a literal credential")
            elif isinstance(v, (dict, list)):
                p += _field_secrets(v, sub)
        # env entries: {name: DB_PASSWORD, value: "..."}
        name = node.get("name")
        if isinstance(name, str) and isinstance(node.get("value"), str) \
                and re.search(r"(?i)(password|passwd|secret|token|api_?key)", name) \
                and not PLACEHOLDER.match(node["value"].strip()):
            p.append(f"{path}: {name} holds a literal credential")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            p += _field_secrets(v, f"{path}[{i}]")
    return p


def _configured_images(state: bytes | None) -> set[str] | None:
    """The images the tree was generated with (--image), from .cni-migrate/state.json."""
    try:
        images = json.loads(state or b"{}").get("images")
    except (ValueError, AttributeError):
        return None
    if isinstance(images, dict):
        return {str(v) for v in images.values()}
    return None


# --- reading the generated YAML quickly -----------------------------------------------------
# Parsing every manifest with pyyaml was most of lint's time (its constructor is Python). The
# generated files are yamlio.dump's block YAML, so _quick_parse reads that subset directly and
# the result is kept only if yamlio.dump writes it back to exactly the same text: then pyyaml
# would have read the same object (dump writes pyyaml's bytes, and pyyaml reads back what it
# wrote). Anything else (comments, several documents, flow style, quoting with escapes,
# scripts) goes to yamlio.load_text as before.

class _NotQuick(Exception):
    pass


_INT = re.compile(r"-?(0|[1-9][0-9]*)")
_WORDS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False,
          "FALSE": False, "yes": True, "Yes": True, "YES": True, "no": False, "No": False,
          "NO": False, "on": True, "On": True, "ON": True, "off": False, "Off": False,
          "OFF": False, "null": None, "Null": None, "NULL": None, "~": None}


def _load(text: str, file: str) -> list[Loaded]:
    if text[:1].isalpha():
        try:
            obj = _quick_parse(text)
        except (_NotQuick, IndexError, ValueError, RecursionError):
            obj = None
        if (type(obj) is dict and not str(obj.get("kind", "")).endswith("List")
                and dump(obj) == text):
            return [Loaded(obj, file, 0, 1)]
    return load_text(text, file)


def _quick_parse(text: str):
    lines = text.split("\n")
    if lines[-1] != "":
        raise _NotQuick
    lines.pop()
    value, end = _block(lines, 0, 0)
    if end != len(lines):
        raise _NotQuick
    return value


def _block(lines: list[str], i: int, indent: int):
    """The mapping or sequence whose lines start at lines[i] with `indent` spaces; returns it
    and the index of the first line after it."""
    line = lines[i]
    if line.startswith("- ", indent):
        return _sequence(lines, i, indent)
    return _mapping(lines, i, indent)


def _mapping(lines: list[str], i: int, indent: int):
    out: dict = {}
    pad = " " * indent
    n = len(lines)
    while i < n:
        line = lines[i]
        if not line.startswith(pad) or line[indent] == " " or line.startswith("- ", indent):
            break
        key, rest = _split_key(line, indent)
        if rest:
            out[key] = _scalar(rest)
            i += 1
            continue
        # a block under the key: deeper, or a sequence at the same indent
        nxt = lines[i + 1] if i + 1 < n else ""
        if nxt.startswith(pad + "- "):
            out[key], i = _sequence(lines, i + 1, indent)
        elif nxt.startswith(pad + "  ") and nxt[indent + 2] != " ":
            out[key], i = _block(lines, i + 1, indent + 2)
        else:
            raise _NotQuick
    return out, i


def _sequence(lines: list[str], i: int, indent: int):
    out: list = []
    head = " " * indent + "- "
    n = len(lines)
    while i < n and lines[i].startswith(head):
        rest = lines[i][indent + 2:]
        if rest.startswith("- ") or _is_key(rest):
            # a block that starts on the "- " line: read it as if indented by two more
            lines[i] = " " * (indent + 2) + rest
            value, i = _block(lines, i, indent + 2)
            out.append(value)
        else:
            out.append(_scalar(rest))
            i += 1
    return out, i


def _is_key(rest: str) -> bool:
    if rest.startswith("'"):
        return "': " in rest or rest.endswith("':")
    return ": " in rest or rest.endswith(":")


def _split_key(line: str, indent: int) -> tuple[str, str]:
    if line.startswith("'", indent):
        end = line.index("': ", indent) if "': " in line else len(line) - 2
        key = line[indent + 1:end].replace("''", "'")
        rest = line[end + 2:]
    else:
        end = line.find(": ", indent)
        if end < 0:
            if not line.endswith(":"):
                raise _NotQuick
            end = len(line) - 1
        key = line[indent:end]
        rest = line[end + 1:]
    if rest and not rest.startswith(" "):
        raise _NotQuick
    return key, rest[1:]


def _scalar(text: str):
    if text.startswith("'"):
        if len(text) < 2 or not text.endswith("'"):
            raise _NotQuick
        return text[1:-1].replace("''", "'")
    if text == "[]":
        return []
    if text == "{}":
        return {}
    if text in _WORDS:
        return _WORDS[text]
    if _INT.fullmatch(text):
        return int(text)
    if text[0] in "\"|>&*!%@`{[":
        raise _NotQuick
    return text   # a plain string; if YAML reads it otherwise, the dump check fails
