"""Hand-made Commit series for the emit tests (independent of the planner and renderer)."""
from __future__ import annotations

import os
import subprocess

from generator.plan.model import Wave
from generator.render.model import Commit

KEYS = ["preflight", "cilium-install", "nodes-01", "final-values"]


def make_commits(variant: str = "a", keys=KEYS, extra: bool = False) -> list[Commit]:
    """A cumulative series: wave i adds waves/NN-key/, and rewrites cilium/values.yaml.
    `variant` changes the content of the node wave (as a changed input would)."""
    tree: dict[str, bytes] = {"README.md": b"# migration\n"}
    commits = []
    for i, key in enumerate(keys):
        wave = Wave(number=i, key=key, title=key.replace("-", " "), changes=[f"change {key}"],
                    gates=["gate"], risk="low", est_minutes=5, rollback="git revert")
        tree = dict(tree)
        content = f"kind: ConfigMap\nmetadata:\n  name: {key}\n"
        if key.startswith("nodes"):
            content += f"data:\n  variant: {variant}\n"
        tree[f"waves/{wave.dirname}/objects.yaml"] = content.encode()
        tree["cilium/values.yaml"] = f"stage: {key}\n".encode()
        branches = {f"rollback/{wave.dirname}": {"README.md": b"rollback\n"}} if extra else {}
        commits.append(Commit(wave=wave, subject=f"wave {i:02d}: {wave.title}",
                              body=f"Changes:\n- change {key}\n", tree=tree,
                              pr_description=f"# wave {i:02d}\n", extra_branches=branches))
    return commits


def git(repo, *args) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout


def log(repo, ref="HEAD") -> list[str]:
    return git(repo, "log", "--format=%H %s", ref).splitlines()


def files(repo) -> dict[str, bytes]:
    out = {}
    for p in sorted(repo.rglob("*")):
        rel = p.relative_to(repo)
        if p.is_file() and rel.parts[0] != ".git":
            out[str(rel)] = p.read_bytes()
    return out
