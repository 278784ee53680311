"""YAML in and out: the only place that talks to pyyaml.

Loading keeps where each object came from (file, document index, line) so errors can name it.
Dumping is deterministic (sorted keys unless told otherwise, block style) and uses the C dumper
when libyaml is present: it is ~5x faster on large outputs. Plain documents (dicts, lists,
ASCII strings, ints, bools, None) are written by _block_dump instead, byte for byte what the
dumper writes but ~20x faster: pyyaml's representer is Python, and 50,000 small manifests
spent most of render there.
"""
from __future__ import annotations

import functools
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
    if not sort_keys:
        text = _block_dump(obj)
        if text is not None:
            return text
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=sort_keys, default_flow_style=False,
                     allow_unicode=True, width=100)


def dump_all(objs: Iterable, *, sort_keys: bool = False) -> str:
    return yaml.dump_all(list(objs), Dumper=_Dumper, sort_keys=sort_keys,
                         default_flow_style=False, allow_unicode=True, width=100,
                         explicit_start=True)


# ----------------------------------------------------------------------------- fast block dump
# _block_dump writes what yaml.dump(obj, CSafeDumper, sort_keys=False, default_flow_style=False,
# allow_unicode=True, width=100) writes, for the common subset only, and returns None for
# anything else (the caller then asks pyyaml). The rules are libyaml's (emitter.c:
# yaml_emitter_analyze_scalar, yaml_emitter_select_scalar_style); tests/test_render_yamldump.py
# compares the two on generated documents.

WIDTH = 100
_STR_TAG = "tag:yaml.org,2002:str"
_RESOLVER = yaml.resolver.Resolver()
# first characters that make a plain scalar impossible (libyaml's flow/block indicators)
_BAD_FIRST = frozenset("#,[]{}&*!|>'\"%@`")
_NOT_A_STR = object()


class _Unsupported(Exception):
    pass


@functools.lru_cache(maxsize=1 << 16)
def _scalar_text(value: str):
    """The scalar as libyaml writes it in block context (plain or single-quoted), or
    _NOT_A_STR when the subset does not cover it (line breaks, tabs, non-ASCII...)."""
    if not value:
        return "''"
    if not (value.isascii() and value.isprintable()):
        return _NOT_A_STR
    plain = value[0] != " " and value[-1] != " "
    if plain:
        first = value[0]
        n = len(value)
        if value.startswith(("---", "...")) or first in _BAD_FIRST:
            plain = False
        elif first in "?:-" and (n == 1 or value[1] == " "):
            plain = False
        elif ": " in value or value[-1] == ":" or " #" in value:
            plain = False
    if plain and _RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) != _STR_TAG:
        plain = False   # "true", "123", "null", "2024-01-01": quoted to stay strings
    return value if plain else "'" + value.replace("'", "''") + "'"


def _scalar(value) -> str:
    t = type(value)
    if t is str:
        text = _scalar_text(value)
        if text is _NOT_A_STR:
            raise _Unsupported
        return text
    if t is bool:
        return "true" if value else "false"
    if t is int:
        return str(value)
    if value is None:
        return "null"
    raise _Unsupported


def _key(value) -> str:
    # longer keys become "? key" (libyaml's simple-key limit is 128)
    if type(value) is not str or len(value) > 120:
        raise _Unsupported
    text = _scalar_text(value)
    if text is _NOT_A_STR:
        raise _Unsupported
    return text


def _line(prefix: str, text: str, out: list) -> None:
    # libyaml folds a scalar at a space once the line is past WIDTH: leave those to pyyaml
    if len(prefix) + len(text) > WIDTH and " " in text:
        raise _Unsupported
    out.append(prefix + text)


def _seen(node, seen: set) -> None:
    # pyyaml writes a container met twice in one document as an anchor and an alias
    if id(node) in seen:
        raise _Unsupported
    seen.add(id(node))


def _mapping(node: dict, indent: int, out: list, seen: set) -> None:
    pad = " " * indent
    for k, v in node.items():
        head = pad + _key(k) + ":"
        t = type(v)
        if t is str:   # most values: _scalar and _line inlined
            text = _scalar_text(v)
            if text is _NOT_A_STR or (len(head) + len(text) >= WIDTH and " " in text):
                raise _Unsupported
            out.append(head + " " + text)
        elif t is dict or t is list:
            _seen(v, seen)
            if not v:
                out.append(head + (" {}" if t is dict else " []"))
            elif t is dict:
                out.append(head)
                _mapping(v, indent + 2, out, seen)
            else:
                out.append(head)
                _sequence(v, indent, out, seen)   # block sequences in a mapping: no indent
        else:
            _line(head + " ", _scalar(v), out)


def _sequence(node: list, indent: int, out: list, seen: set) -> None:
    pad = " " * indent
    for v in node:
        t = type(v)
        if t is dict or t is list:
            _seen(v, seen)
            if not v:
                out.append(pad + ("- {}" if t is dict else "- []"))
                continue
            # the first line of a nested block goes on the "- " line
            start = len(out)
            if t is dict:
                _mapping(v, indent + 2, out, seen)
            else:
                _sequence(v, indent + 2, out, seen)
            out[start] = pad + "- " + out[start][indent + 2:]
        else:
            _line(pad + "- ", _scalar(v), out)


def _block_dump(obj) -> str | None:
    t = type(obj)
    if (t is not dict and t is not list) or not obj:
        return None
    out: list[str] = []
    try:
        if t is dict:
            _mapping(obj, 0, out, {id(obj)})
        else:
            _sequence(obj, 0, out, {id(obj)})
    except _Unsupported:
        return None
    out.append("")
    return "\n".join(out)
