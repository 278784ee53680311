"""Write the rendered waves as git history: one commit per wave, in order.

The output repository is treated as sacred:
- a new DIR is built in a temporary sibling directory and renamed into place, so it either
  appears complete or not at all;
- an existing repository is only ever extended: objects are written first (git fast-import, no
  ref touched), then the branch moves with a compare-and-swap (`git update-ref ref new old`),
  then the work tree follows (`git read-tree -m -u old new`). A journal in .git/ records the
  move, so a run killed between the last two steps is completed (or undone) by the next run;
- uncommitted changes, untracked files and commits a user added on top are never touched: the
  run refuses and says why (or, for user commits, writes a fresh branch with --new-branch).

Re-running with changed input adds commits on top (see update.py). Modules: series.py (trees,
messages, dates), safety.py (dirty check, journaled branch + work tree move), update.py
(existing repositories), git.py (running git, fast-import).

Commits are deterministic: fixed identity, dates derived from the input digest and the wave
number, so two runs on any machine give the same SHAs.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import UserError
from ..render.model import Commit
from .git import Git, init_repo, valid_branch_name
from .gittree import check_paths
from .safety import (JOURNAL, check_branch_name, head_branch, hook, recover, refuse_dirty,
                     update_refs)
from .series import (EmitResult, Written, series_commits, series_trees, side_branches)
from .update import update_branch, write_new_branch

__all__ = ["EmitResult", "Written", "preflight", "write_repo"]

TMP_MARK = ".cni-migrate-tmp."


def write_repo(out_dir, commits: list[Commit], *, branches: bool = False,
               new_branch: str | None = None, input_digest: str, branch: str = "main",
               meta: dict | None = None) -> EmitResult:
    """Write `commits` (one per wave, in order) into the git repository at out_dir.

    branches: also one stacked branch per wave (wave/NN-key) so each can be a pull request.
    new_branch: write the whole series on this new branch (from the current tip), leaving
    existing branches alone: the way to regenerate over user commits.
    meta: extra JSON-able facts stored in .cni-migrate/state.json (e.g. engine, images).
    """
    if not commits:
        raise ValueError("write_repo: no commits")
    if not input_digest:
        raise ValueError("write_repo: input_digest is required (it drives commit dates)")
    checked: set[str] = set()
    for c in commits:
        check_paths(c.tree, c.subject, checked)
        for name, t in c.extra_branches.items():
            check_paths(t, f"{c.subject} branch {name}", checked)
            if not valid_branch_name(name):
                raise ValueError(f"{c.subject}: invalid branch name {name!r}")
    out = Path(out_dir)
    trees = series_trees(commits, input_digest, dict(meta or {}))
    result = _write(out, commits, trees, input_digest, branches, new_branch, branch)
    result.pr_files = sorted(p for p in trees[-1] if p.startswith("pr/"))
    return result


def preflight(out_dir, *, new_branch: str | None = None) -> None:
    """Read-only checks write_repo would fail on, for callers to run before expensive work:
    a non-repository in the way, a dirty or detached repository, a bad branch name."""
    out = Path(out_dir)
    if new_branch:
        check_branch_name(new_branch, out)
    if not out.exists() or (out.is_dir() and not out.is_symlink() and not any(out.iterdir())):
        return
    if not out.is_dir():
        raise UserError("output path exists and is not a directory", file=str(out))
    if not (out / ".git").exists():
        raise UserError("output directory exists, is not empty and is not a git repository; "
                        "choose another --out or empty it", file=str(out))
    git = Git(out)
    if (git.git_dir / JOURNAL).exists():
        return  # an interrupted run: write_repo completes or undoes it first
    refuse_dirty(git, out)
    if not new_branch and head_branch(git) is None:
        raise UserError("output repository has a detached HEAD; check out its branch first or "
                        "use --new-branch NAME", file=str(out))


def _write(out: Path, commits, trees, input_digest, branches, new_branch, branch) -> EmitResult:
    if not out.exists() or (out.is_dir() and not out.is_symlink() and not any(out.iterdir())):
        if new_branch:
            check_branch_name(new_branch, out)
        return _create(out, commits, trees, input_digest, branches, new_branch or branch)
    if not out.is_dir():
        raise UserError("output path exists and is not a directory", file=str(out))
    if not (out / ".git").exists():
        raise UserError("output directory exists, is not empty and is not a git repository; "
                        "choose another --out or empty it", file=str(out))
    git = Git(out)
    recover(git)
    refuse_dirty(git, out)
    if new_branch:
        return write_new_branch(git, out, commits, trees, input_digest, branches, new_branch)
    return update_branch(git, out, commits, trees, input_digest, branches)


def _create(out: Path, commits, trees, input_digest, branches: bool, branch: str) -> EmitResult:
    """A brand-new repository, built next to its final place and renamed into it."""
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the output directory: {e.strerror}", file=str(out)) \
            from None
    _remove_stale_tmp(parent, out.name)
    tmp = parent / f".{out.name}{TMP_MARK}{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        try:
            tmp.mkdir()
        except OSError as e:
            raise UserError(f"cannot create a directory next to the output: {e.strerror}",
                            file=str(tmp)) from None
        git = init_repo(tmp, branch)
        series = series_commits(commits, trees, input_digest, None)
        shas = git.fast_import(series)
        hook("import")
        # The work tree (thousands of new files: often the slowest step) is written while
        # the side branches are imported; nothing else touches the index or the work tree.
        checkout = git.start("read-tree", "--reset", "-u", shas[-1])
        try:
            refs = {f"refs/heads/{branch}": shas[-1]}
            result = EmitResult(out, branch, "created",
                                [Written(s, c.subject, c.wave.key) for s, c in zip(shas, commits)])
            side_branches(git, commits, shas, input_digest, branches, "", "", refs, result,
                          trees=trees)
            update_refs(git, {r: (sha, None) for r, sha in refs.items()})
        except BaseException:
            checkout.kill()   # the whole directory is removed below
            checkout.wait()
            raise
        git.finish(checkout, "read-tree")
        hook("build")
        try:
            os.replace(tmp, out)  # also replaces an empty directory
        except OSError as e:  # e.g. another run created it meanwhile
            raise UserError(f"cannot move the new repository into place: {e.strerror}",
                            file=str(out)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def _remove_stale_tmp(parent: Path, name: str) -> None:
    """Temporary build directories left by a killed run (its process is gone)."""
    prefix = f".{name}{TMP_MARK}"
    for p in parent.iterdir():
        if not p.name.startswith(prefix):
            continue
        pid = p.name.rsplit(".", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
