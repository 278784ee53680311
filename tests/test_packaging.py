"""The installed tool (not just the source tree) must find its templates and overlays."""
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "generator").rglob("__init__.py")}
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"


@pytest.mark.skipif(not os.environ.get("CI") and not os.environ.get("CNI_MIGRATE_SLOW"),
                    reason="installs the package into a temp dir (~10 s); runs in CI")
def test_installed_copy_generates_the_example(tmp_path):
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--target", str(target), str(ROOT)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "generator", "generate", "--from",
                        str(ROOT / "examples" / "kind-canal"), "--out", str(out)],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (out / "cilium" / "values.yaml").is_file()
    log = subprocess.run(["git", "-C", str(out), "log", "--format=%s"], capture_output=True,
                         text=True).stdout.splitlines()
    assert log[-1].startswith("wave 00:") and len(log) >= 8
