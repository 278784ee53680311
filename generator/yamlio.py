"""YAML in and out: the only place that talks to pyyaml.

Loading keeps where each object came from (file, document index, line) so errors can name it.
Dumping is deterministic (sorted keys unless told otherwise, block style) and uses the C dumper
when libyaml is present: it is ~5x faster on large outputs.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import yaml

from .errors import UserError

try:  # libyaml bindings are optional
    from yaml import CSafeDumper as _Dumper, CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on the build of pyyaml
    from yaml import SafeDumper as _Dumper, SafeLoader as _Loader

YAML_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True, slots=True)
class Loaded:
    """One Kubernetes-style object and where it came from (slots: a snapshot has ~100,000)."""
    obj: dict
    file: str
    doc: int          # 0-based document index in the file
    line: int | None  # 1-based line where the document starts, when known

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


def _doc_start_lines(text: str) -> list[int]:
    """1-based start line of each YAML document (cheap scan for '---' separators)."""
    starts = [1]
    for i, line in enumerate(text.splitlines(), start=1):
        if line.startswith("---") and (len(line) == 3 or line[3] in " \t#"):
            starts.append(i + 1)
    return starts


def _parse_docs(text: str, file: str) -> list:
    # JSON (kubectl get -o json) is valid YAML, but json.loads is ~50x faster than libyaml on
    # large exports (50,000 pods): try it first when the text looks like JSON.
    if text.lstrip()[:1] in ("{", "["):
        try:
            return [json.loads(text)]
        except ValueError as e:
            if file.endswith(".json"):
                raise UserError(f"malformed JSON: {e.msg}", file=f"{file}:{e.lineno}") from None
    try:
        return list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f"{file}:{mark.line + 1}" if mark is not None else file
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"malformed YAML: {problem}", file=where) from None


def load_text(text: str, file: str) -> list[Loaded]:
    """Parse a multi-document YAML (or JSON) text; expand `kind: List` / `*List` objects."""
    docs = _parse_docs(text, file)
    starts = _doc_start_lines(text) if len(docs) > 1 else [1]
    out: list[Loaded] = []
    # Empty documents (e.g. a leading '---') are skipped, so align docs to separators loosely.
    for i, doc in enumerate(docs):
        line = starts[i] if i < len(starts) else None
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise UserError("expected a mapping (a Kubernetes object or List)",
                            file=f"{file}:{line}" if line else file)
        if doc.get("kind") == "List" or (str(doc.get("kind", "")).endswith("List")
                                         and isinstance(doc.get("items"), list)):
            for item in doc.get("items") or []:
                if not isinstance(item, dict):
                    raise UserError("List item is not a mapping", file=file)
                if "kind" not in item and str(doc.get("kind", "")).endswith("List") \
                        and doc.get("kind") != "List":
                    # typed lists (e.g. NodeList from the API) omit kind/apiVersion on items
                    item = {"apiVersion": doc.get("apiVersion"),
                            "kind": doc["kind"][:-4], **item}
                out.append(Loaded(item, file, i, line))
        else:
            out.append(Loaded(doc, file, i, line))
    return out


def iter_yaml_files(paths: Iterable[str | os.PathLike]) -> Iterator[Path]:
    """Files named, and YAML/JSON files under directories named, in sorted order."""
    for p in paths:
        path = Path(p)
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if f.is_file() and f.suffix in YAML_SUFFIXES and not any(
                        part.startswith(".") for part in f.relative_to(path).parts):
                    yield f
        elif path.is_file():
            yield path
        else:
            raise UserError("no such file or directory", file=str(path))


def load_paths(paths: Iterable[str | os.PathLike]) -> list[Loaded]:
    out: list[Loaded] = []
    for f in iter_yaml_files(paths):
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"cannot read: {e.__class__.__name__}: {e}", file=str(f)) from None
        out.extend(load_text(text, str(f)))
    return out


def dump(obj, *, sort_keys: bool = False) -> str:
    """One YAML document. Key order is kept (callers build dicts in Kubernetes order)."""
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=sort_keys, default_flow_style=False,
                     allow_unicode=True, width=100)


def dump_all(objs: Iterable, *, sort_keys: bool = False) -> str:
    return yaml.dump_all(list(objs), Dumper=_Dumper, sort_keys=sort_keys,
                         default_flow_style=False, allow_unicode=True, width=100,
                         explicit_start=True)
