"""The jinja2 environment for templates/*.j2.

Installed, the templates are the package generator.templates (pyproject maps templates/ there);
in a source checkout they are the top-level templates/ directory.
"""
from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import jinja2

SOURCE_DIR = Path(__file__).resolve().parent.parent.parent / "templates"


def _template_dir() -> Path:
    try:
        d = resources.files("generator.templates")
        if d.is_dir() and any(p.name.endswith(".j2") for p in d.iterdir()):
            return Path(str(d))
    except (ModuleNotFoundError, TypeError):
        pass
    return SOURCE_DIR


@functools.lru_cache(maxsize=1)
def env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_template_dir())),
        undefined=jinja2.StrictUndefined,   # a missing variable is a bug, not an empty string
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        autoescape=False)
