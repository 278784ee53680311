"""The commit series: trees with PR files and state, messages, dates, branch names.

Dates are a fixed epoch plus an offset derived from the input digest plus one minute per wave,
and the identity is fixed, so the same input gives the same commit SHAs on any machine.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..errors import UserError
from ..render.model import Commit
from .git import Git, NewCommit
from .gittree import STATE_PATH, Diff, state_bytes, tree_digest

BASE_EPOCH = 1704067200          # 2024-01-01T00:00:00Z; commit dates are this + f(digest)


@dataclass
class Written:
    sha: str
    subject: str
    wave_key: str
    diff: Diff | None = None      # for update commits: what changed against the previous tip


@dataclass
class EmitResult:
    out_dir: Path
    branch: str                   # branch that received the series
    status: str                   # "created" | "updated" | "up-to-date" | "new-branch"
    commits: list[Written] = field(default_factory=list)
    branches: dict[str, str] = field(default_factory=dict)   # other branches written: name -> sha
    skipped_branches: list[str] = field(default_factory=list)
    pr_files: list[str] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        return self.status == "up-to-date"


def date0(input_digest: str) -> int:
    h = int(hashlib.sha256(input_digest.encode()).hexdigest()[:8], 16)
    return BASE_EPOCH + (h % (365 * 24 * 60)) * 60


def short(digest: str, n: int = 12) -> str:
    """Hex part of a digest such as 'sha256:ab12...', shortened (safe in ref names)."""
    hexpart = digest.rsplit(":", 1)[-1]
    if not hexpart.isalnum():
        hexpart = hashlib.sha256(digest.encode()).hexdigest()
    return hexpart[:n]


def pr_path(number: int) -> str:
    return f"pr/wave-{number:02d}.md"


def message(subject: str, body: str, trailer_lines: dict[str, str]) -> str:
    text = subject.strip().splitlines()[0] if subject.strip() else "cni-migrate"
    body = body.strip()
    if body:
        text += "\n\n" + body
    text += "\n\n" + "\n".join(f"{k}: {v}" for k, v in trailer_lines.items()) + "\n"
    return text


def series_trees(commits: list[Commit], input_digest: str, meta: dict) -> list[dict[str, bytes]]:
    """Tree of each wave: the rendered tree, plus PR files up to this wave, plus state.json."""
    trees = []
    # encoded once: every later tree shares the same bytes object (PR texts can be tens of MB,
    # and fast_import skips a path whose content `is` the previous tree's)
    prs = [c.pr_description.encode() for c in commits]
    for i, c in enumerate(commits):
        tree = dict(c.tree)
        for earlier, pr in zip(commits[:i + 1], prs):
            tree.setdefault(pr_path(earlier.wave.number), pr)
        tree.pop(STATE_PATH, None)
        trees.append(tree)
    waves = [{"number": c.wave.number, "key": c.wave.key, "subject": c.subject,
              "tree": tree_digest(t)} for c, t in zip(commits, trees)]
    for c, t in zip(commits, trees):
        state = {"tool": "cni-migrate", "version": __version__, "input_digest": input_digest,
                 "wave": c.wave.key, "waves": waves, **meta}
        t[STATE_PATH] = state_bytes(state)
    return trees


def trailers(c: Commit, input_digest: str) -> dict[str, str]:
    return {"Cni-Migrate-Wave": c.wave.dirname, "Cni-Migrate-Input": input_digest}


def series_commits(commits, trees, input_digest, parent: str | None) -> list[NewCommit]:
    d0 = date0(input_digest)
    out = []
    for i, (c, t) in enumerate(zip(commits, trees)):
        out.append(NewCommit(message(c.subject, c.body, trailers(c, input_digest)),
                             d0 + 60 * i, (i - 1) if i else parent, t))
    return out


def extra_commits(commits, input_digest, base_refs: list, name_of,
                  base_trees: list | None = None) -> tuple[list[NewCommit], list[str]]:
    """Commits for Commit.extra_branches (e.g. rollback), each on top of its wave's commit.
    base_trees: the tree of each base_refs commit where known, so only differences are sent."""
    d0 = date0(input_digest)
    new, names = [], []
    for i, c in enumerate(commits):
        if base_refs[i] is None:
            continue
        base = base_trees[i] if base_trees is not None else None
        for name in sorted(c.extra_branches):
            msg = message(f"{name}: {c.subject}",
                           f"Branch {name}, based on the commit of {c.subject}.",
                           trailers(c, input_digest))
            new.append(NewCommit(msg, d0 + 60 * i + 30, base_refs[i], c.extra_branches[name],
                                 base))
            names.append(name_of(name))
    return new, names


def wave_branch(c: Commit, prefix: str = "", suffix: str = "") -> str:
    return f"{prefix}wave/{c.wave.dirname}{suffix}"


def side_branches(git: Git, commits, shas, input_digest, branches: bool, prefix: str,
                   suffix: str, refs: dict, result: EmitResult, skip_existing: bool = False,
                   trees: list | None = None):
    """Wave branches (if asked) and Commit.extra_branches, added to `refs` (name -> sha).
    trees: the tree of each commit in shas, where known (see extra_commits)."""
    wanted: dict[str, str] = {}
    if branches:
        for c, sha in zip(commits, shas):
            if sha is not None:
                wanted[wave_branch(c, prefix, suffix)] = sha
    extra, names = extra_commits(commits, input_digest, shas, lambda n: f"{prefix}{n}{suffix}",
                                 trees)
    if extra:
        for name, sha in zip(names, git.fast_import(extra)):
            wanted[name] = sha
    # one listing rather than a rev-parse per branch (a process each)
    existing = set(git.run("for-each-ref", "--format=%(refname)", "refs/heads/").split()) \
        if wanted else set()
    for name in sorted(wanted):
        ref = f"refs/heads/{name}"
        if ref in existing:
            if skip_existing:
                result.skipped_branches.append(name)
                continue
            raise UserError(f"branch {name} already exists; it is never rewritten: "
                            "use --new-branch NAME", file=str(git.work_tree))
        refs[ref] = wanted[name]
        result.branches[name] = wanted[name]
