"""The static pieces in overlays/<engine>/ (installed as package generator.overlays)."""
from __future__ import annotations

import copy
import functools
from importlib import resources
from pathlib import Path

from .. import yamlio

SOURCE_DIR = Path(__file__).resolve().parent.parent.parent / "overlays"


def _overlay_dir() -> Path:
    try:
        d = resources.files("generator.overlays")
        if d.is_dir() and (Path(str(d)) / "argocd").is_dir():
            return Path(str(d))
    except (ModuleNotFoundError, TypeError):
        pass
    return SOURCE_DIR


@functools.lru_cache(maxsize=None)
def _load(rel: str) -> dict:
    path = _overlay_dir() / rel
    docs = yamlio.load_text(path.read_text(encoding="utf-8"), str(path))
    return docs[0].obj


def load_overlay(rel: str) -> dict:
    """A fresh copy of the one object in overlays/<rel>, for the caller to fill in."""
    return copy.deepcopy(_load(rel))
