"""Running git on the output repository, isolated from the caller's environment.

Every command gets GIT_DIR/GIT_WORK_TREE set explicitly, so an output directory that sits inside
another repository (e.g. out/ in a checkout) is never mistaken for it, and GIT_* variables
inherited from a hook or a shell never redirect our writes.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

IDENTITY = "cni-migrate <cni-migrate@localhost>"
IDENTITY_EMAIL = "cni-migrate@localhost"
NULL_SHA = "0" * 40


@dataclass
class NewCommit:
    """A commit for fast-import. parent: a sha, an int (index of an earlier NewCommit) or None."""
    message: str
    date: int
    parent: str | int | None
    tree: dict[str, bytes | str]  # content, or the id of a blob already in the repository
    # the tree of a parent given by sha, when the caller knows it: only the difference is
    # sent (a rollback branch differs from its wave's commit in one directory)
    base: dict[str, bytes | str] | None = None


def _git_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}


# Letters, digits, "_" and "-" in "/"-separated parts, not starting with "-": valid under
# every rule of `git check-ref-format --branch`, so no process is needed for the names this
# tool makes itself (rollback/wave-NN, wave/NN-key: one check each per run).
_PLAIN_BRANCH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*(/[A-Za-z0-9_][A-Za-z0-9_-]*)*")


def valid_branch_name(name: str) -> bool:
    if name != "HEAD" and _PLAIN_BRANCH.fullmatch(name):
        return True
    try:
        r = subprocess.run(["git", "check-ref-format", "--branch", name], capture_output=True,
                           env=_git_env())
    except FileNotFoundError:
        raise UserError("git is not installed (needed to write the output repository)") \
            from None
    return r.returncode == 0 and not name.startswith("-")


def init_repo(path: Path, branch: str) -> "Git":
    """A new repository whose HEAD names `branch` (symbolic-ref: works before git 2.28 too)."""
    try:
        # sha1 whatever the user's init.defaultObjectFormat says: the same SHAs everywhere
        r = subprocess.run(["git", "-c", "init.defaultObjectFormat=sha1", "init", "-q",
                            str(path)], capture_output=True, env=_git_env())
    except FileNotFoundError:
        raise UserError("git is not installed (needed to write the output repository)") \
            from None
    if r.returncode != 0:
        err = r.stderr.decode(errors="replace").strip().splitlines()
        raise UserError(f"git init failed: {err[-1] if err else r.returncode}", file=str(path))
    git = Git(path)
    git.run("symbolic-ref", "HEAD", f"refs/heads/{branch}")
    return git


def _git_dir(work_tree: Path) -> Path:
    """work_tree/.git, or where a .git file points (linked worktrees, submodules)."""
    dot = work_tree / ".git"
    if dot.is_file():
        text = dot.read_text(errors="replace").strip()
        if text.startswith("gitdir:"):
            target = Path(text[len("gitdir:"):].strip())
            return target if target.is_absolute() else (work_tree / target).resolve()
    return dot


class Git:
    def __init__(self, work_tree: Path):
        self.work_tree = Path(work_tree).absolute()  # GIT_DIR must not depend on cwd
        env = _git_env()
        self.git_dir = _git_dir(self.work_tree)
        env.update(GIT_DIR=str(self.git_dir), GIT_WORK_TREE=str(self.work_tree),
                   GIT_TERMINAL_PROMPT="0", LC_ALL="C")
        self.env = env

    def run(self, *args: str, input: bytes | None = None, check: bool = True) -> str:
        try:
            r = subprocess.run(["git", *args], input=input, capture_output=True, env=self.env,
                               cwd=self.work_tree)
        except FileNotFoundError:
            raise UserError("git is not installed (needed to write the output repository)") \
                from None
        if check and r.returncode != 0:
            err = r.stderr.decode(errors="replace").strip().splitlines()
            raise UserError(f"git {args[0]} failed: {err[-1] if err else r.returncode}",
                            file=str(self.work_tree))
        return r.stdout.decode(errors="replace")

    def start(self, *args: str) -> subprocess.Popen:
        """Run git in the background (see finish): for work that can overlap other work."""
        try:
            return subprocess.Popen(["git", *args], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    env=self.env, cwd=self.work_tree)
        except FileNotFoundError:
            raise UserError("git is not installed (needed to write the output repository)") \
                from None

    def finish(self, proc: subprocess.Popen, what: str) -> None:
        """Wait for a start()ed git; fail as run() does."""
        _, err = proc.communicate()
        if proc.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            raise UserError(f"git {what} failed: {lines[-1] if lines else proc.returncode}",
                            file=str(self.work_tree))

    def ok(self, *args: str) -> bool:
        return subprocess.run(["git", *args], capture_output=True, env=self.env,
                              cwd=self.work_tree).returncode == 0

    def rev(self, ref: str) -> str | None:
        out = self.run("rev-parse", "-q", "--verify", f"{ref}^{{commit}}", check=False).strip()
        return out or None

    def tree_ids(self, rev: str) -> dict[str, str]:
        """{path: blob id} of a commit's tree."""
        out = self.run("ls-tree", "-r", "-z", "--full-tree", rev)
        ids = {}
        for entry in out.split("\0"):
            if entry:
                info, path = entry.split("\t", 1)
                ids[path] = info.split()[2]
        return ids

    def show_file(self, rev: str, path: str) -> bytes | None:
        r = subprocess.run(["git", "cat-file", "blob", f"{rev}:{path}"], capture_output=True,
                           env=self.env, cwd=self.work_tree)
        return r.stdout if r.returncode == 0 else None

    def fast_import(self, commits: list[NewCommit], identity: str = IDENTITY) -> list[str]:
        """Write blobs and commits (no ref is touched); return the commit shas in order."""
        # On top of a known parent tree only the difference is sent (waves repeat most of
        # the tree); otherwise the whole tree. Blobs only for what is sent, each once.
        changes = [_changes(c, commits) for c in commits]
        blob_marks: dict[bytes, int] = {}
        chunks: list[bytes] = []
        mark = 0
        for _, changed in changes:
            for _, data in changed:
                if isinstance(data, bytes) and data not in blob_marks:
                    mark += 1
                    blob_marks[data] = mark
                    chunks.append(b"blob\nmark :%d\ndata %d\n" % (mark, len(data)) + data + b"\n")
        commit_marks: list[int] = []
        scratch = b"refs/cni-migrate/import"
        for c, (removed, changed) in zip(commits, changes):
            mark += 1
            commit_marks.append(mark)
            if c.parent is None:
                # Without this, fast-import would chain onto the previous commit of the ref.
                chunks.append(b"reset " + scratch + b"\n\n")
            msg = c.message.encode()
            head = [b"commit " + scratch, b"mark :%d" % mark,
                    b"author %s %d +0000" % (identity.encode(), c.date),
                    b"committer %s %d +0000" % (identity.encode(), c.date),
                    b"data %d" % len(msg)]
            chunks.append(b"\n".join(head) + b"\n" + msg + b"\n")
            if isinstance(c.parent, int):
                chunks.append(b"from :%d\n" % commit_marks[c.parent])
            elif c.parent is not None:
                chunks.append(b"from %s\n" % c.parent.encode())
            if removed is None:
                chunks.append(b"deleteall\n")
            else:
                chunks.extend(b"D %s\n" % path.encode() for path in removed)
            for path, data in changed:
                ref = data.encode() if isinstance(data, str) else b":%d" % blob_marks[data]
                chunks.append(b"M 100644 %s %s\n" % (ref, path.encode()))
            chunks.append(b"\n")
        # Leave no ref behind: a reset to the null sha means fast-import writes no ref at all.
        chunks.append(b"reset " + scratch + b"\nfrom " + NULL_SHA.encode() + b"\n\ndone\n")
        with tempfile.TemporaryDirectory() as tmp:
            marks_file = Path(tmp) / "marks"
            self.run("fast-import", "--quiet", "--done", f"--export-marks={marks_file}",
                     input=b"".join(chunks))
            marks = {}
            for line in marks_file.read_text().splitlines():
                m, sha = line.split()
                marks[int(m[1:])] = sha
        return [marks[m] for m in commit_marks]


def _changes(c: NewCommit, commits: list[NewCommit]) -> tuple[list[str] | None, list[tuple]]:
    """(paths removed, [(path, content) added or changed]) against the tree the commit starts
    from; removed is None when that tree is unknown (then: deleteall and the whole tree)."""
    if isinstance(c.parent, int):
        prev = commits[c.parent].tree
    else:
        prev = c.base if c.parent is not None else None
    if prev is None:
        return None, [(path, c.tree[path]) for path in sorted(c.tree)]
    tree = c.tree
    removed = sorted(path for path in prev if path not in tree)
    changed = []
    for path in sorted(tree):
        data = tree[path]
        old = prev.get(path)
        # same object (render shares unchanged files between trees), else same content
        if old is data or (old is not None and type(old) is type(data) and old == data):
            continue
        changed.append((path, data))
    return removed, changed
