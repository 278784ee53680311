"""Keeping the output repository whole: refusing a dirty one, moving the checked-out branch
and the work tree together (journaled), deferring Ctrl-C meanwhile, recovering a killed run.

A journal in .git/ records a move before it starts, so a run killed between moving the branch
and updating the work tree is completed (branch moved) or undone (not moved) by the next run.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path

from ..errors import UserError
from .git import NULL_SHA, Git, valid_branch_name

JOURNAL = "cni-migrate-journal.json"


def hook(step: str) -> None:
    """Test hooks, read only here: CNI_MIGRATE_TEST_CRASH_AFTER=<step> exits hard (no cleanup,
    like SIGKILL); CNI_MIGRATE_TEST_INTERRUPT_AFTER=<step> raises KeyboardInterrupt (Ctrl-C);
    CNI_MIGRATE_TEST_PAUSE_AFTER=<step> says "paused" on stderr and waits, for a test to send a
    real signal. Steps: import (objects written), ref (branch moved), worktree, build (new DIR
    complete, not yet renamed into place)."""
    if os.environ.get("CNI_MIGRATE_TEST_CRASH_AFTER") == step:
        os._exit(75)
    if os.environ.get("CNI_MIGRATE_TEST_INTERRUPT_AFTER") == step:
        raise KeyboardInterrupt
    if os.environ.get("CNI_MIGRATE_TEST_PAUSE_AFTER") == step:
        os.write(2, b"paused\n")
        time.sleep(2)


@contextlib.contextmanager
def signals_deferred():
    """Hold SIGINT/SIGTERM while refs and work tree move together; deliver them afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    old = {s: signal.signal(s, lambda n, _f: pending.append(n))
           for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if pending:
            if pending[0] == signal.SIGINT:
                raise KeyboardInterrupt
            os.kill(os.getpid(), pending[0])


def check_branch_name(name: str, out: Path) -> None:
    if not valid_branch_name(name):
        raise UserError(f"invalid branch name {name!r}", file=str(out))


def update_refs(git: Git, moves: dict[str, tuple[str, str | None]]) -> None:
    """Move several refs in one all-or-nothing transaction, each compare-and-swap."""
    lines = []
    for ref, (new, old) in sorted(moves.items()):
        lines.append(f"update {ref} {new} {old or NULL_SHA}")
    git.run("update-ref", "--stdin", input=("\n".join(lines) + "\n").encode())


def refuse_dirty(git: Git, out: Path) -> None:
    out_text = git.run("status", "--porcelain=v1", "-z", "--untracked-files=all")
    entries = [e for e in out_text.split("\0") if e]
    if entries:
        paths = [e[3:] for e in entries if len(e) > 3]
        shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        raise UserError(f"output repository has uncommitted changes or untracked files "
                        f"({shown}); commit or remove them first", file=str(out))


def head_branch(git: Git) -> str | None:
    ref = git.run("symbolic-ref", "-q", "HEAD", check=False).strip()
    return ref[len("refs/heads/"):] if ref.startswith("refs/heads/") else None


def move(git: Git, ref: str, old: str | None, new: str, others: dict) -> None:
    """Move the checked-out branch and the work tree together, journaled for crash recovery."""
    journal = git.git_dir / JOURNAL
    with signals_deferred():
        tmp = journal.with_suffix(".tmp")
        tmp.write_text(json.dumps({"ref": ref, "old": old, "new": new}))
        os.replace(tmp, journal)
        try:
            update_refs(git, {ref: (new, old), **others})
            hook("ref")
            if old:
                git.run("read-tree", "-m", "-u", old, new)
            else:
                git.run("read-tree", "--reset", "-u", new)
            hook("worktree")
        except BaseException:
            # Interrupted or failed after the journal: finish or undo now, not next run.
            recover(git)
            raise
        journal.unlink()


def recover(git: Git) -> None:
    """Complete (ref moved) or undo (ref not moved) a move a previous run did not finish."""
    journal = git.git_dir / JOURNAL
    if not journal.exists():
        return
    try:
        j = json.loads(journal.read_text())
    except ValueError:
        journal.unlink()
        return
    cur = git.rev(j["ref"])
    if cur == j["new"]:
        git.run("read-tree", "--reset", "-u", j["new"])
    elif cur is not None and cur == j.get("old"):
        git.run("read-tree", "--reset", "-u", j["old"])
    journal.unlink()
