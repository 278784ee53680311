"""Write what was read from a live cluster as a snapshot directory.

One kubectl-style List file per kind (`kubectl get pods -A -o yaml` shape, keys sorted as
kubectl prints them), so `generate --from DIR` reads it unchanged and people can diff two
snapshots. The directory is written next to its final place and renamed in, so an interrupted run
never leaves half a snapshot.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..errors import UserError
from ..yamlio import dump
from .reader import ClusterRead

MARKER = "SNAPSHOT.md"   # identifies a directory this command wrote (safe to replace)


def list_document(objs: list[dict]) -> str:
    return dump({"apiVersion": "v1", "items": objs, "kind": "List",
                 "metadata": {"resourceVersion": ""}}, sort_keys=True)


def summary(read: ClusterRead) -> str:
    lines = [f"# Cluster snapshot ({read.source})", "",
             "Written by `cni-migrate snapshot`; read it with "
             "`cni-migrate generate --from <this directory>`.", "",
             "| file | objects |", "|---|---|"]
    lines += [f"| {name} | {n} |" for name, n in read.counts().items()]
    if read.notes:
        lines += ["", "Not read:", ""] + [f"- {n}" for n in read.notes]
    return "\n".join(lines) + "\n"


def write_snapshot(read: ClusterRead, out_dir: str | os.PathLike, *, force: bool = False) -> Path:
    out = Path(out_dir)
    if out.exists():
        if not out.is_dir():
            raise UserError("exists and is not a directory", file=str(out))
        if any(out.iterdir()) and not (out / MARKER).is_file() and not force:
            raise UserError("directory is not empty and is not a snapshot; choose another "
                            "--out or pass --force to replace it", file=str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it 0700; a snapshot holds no secrets
        for name, objs in read.files.items():
            (tmp / name).write_text(list_document(objs), encoding="utf-8")
        (tmp / MARKER).write_text(summary(read), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
