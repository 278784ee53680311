"""Writing into an existing repository: extending its branch, or a new branch next to it.

Re-running with changed input adds one commit per wave that owns a changed file. Each file goes
straight to its new final content, never back to an earlier wave's content: the branch tip may
already be applied to the cluster, and stepping a file backwards (e.g. Cilium values in
migration mode) would undo the migration. To replay the whole migration from its first wave, use
--new-branch NAME: the whole series on a new branch from the current tip (so it can be a pull
request), keeping the user's own files (top-level names the series never uses).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from .git import IDENTITY_EMAIL, Git, NewCommit
from .gittree import STATE_PATH, blob_id, diff_ids, tree_ids
from .safety import check_branch_name, head_branch, hook, move, update_refs
from .series import (EmitResult, Written, message, series_commits, short, side_branches,
                     trailers)

def _ours(git: Git, rev: str) -> bool:
    email = git.run("log", "-1", "--format=%ae%x00%ce", rev).strip().split("\0")
    return all(e == IDENTITY_EMAIL for e in email) and git.show_file(rev, STATE_PATH) is not None


def write_new_branch(git: Git, out: Path, commits, trees, input_digest, branches: bool,
                name: str) -> EmitResult:
    check_branch_name(name, out)
    head = git.rev("HEAD")
    if head is not None:
        # Files the user keeps next to ours (e.g. NOTES.md, .github/) ride along unchanged:
        # anything under a top-level name the series never uses.
        ours = {p.split("/", 1)[0] for t in trees for p in t}
        kept = {p: i for p, i in git.tree_ids(head).items() if p.split("/", 1)[0] not in ours}
        trees = [{**kept, **t} for t in trees]
    existing = git.rev(f"refs/heads/{name}")
    if existing is not None:
        if not diff_ids(git.tree_ids(existing), _ids_of(trees[-1])):
            return EmitResult(out, name, "up-to-date")
        raise UserError(f"branch {name} already exists with other content; it is never "
                        "rewritten: choose another --new-branch name", file=str(out))
    shas = git.fast_import(series_commits(commits, trees, input_digest, head))
    hook("import")
    result = EmitResult(out, name, "new-branch",
                        [Written(s, c.subject, c.wave.key) for s, c in zip(shas, commits)])
    refs = {f"refs/heads/{name}": shas[-1]}
    side_branches(git, commits, shas, input_digest, branches, f"{name}-", "", refs, result,
                  trees=trees)
    update_refs(git, {r: (sha, None) for r, sha in refs.items()})  # work tree stays as is
    hook("ref")
    return result


def _owner_wave(path: str, series_ids: list[dict[str, str]], dirs: list[str]) -> int:
    """The wave from which `path` holds its final content. A file the new series never has
    (an old leftover) goes with the wave whose directory holds it, else with the last wave:
    cleanup comes after the new content."""
    owner = None
    prev = None
    for i, ids in enumerate(series_ids):
        cur = ids.get(path)
        if cur != prev:
            owner = i
        prev = cur
    if owner is not None:
        return owner
    for i, d in enumerate(dirs):
        if path.startswith(f"waves/{d}/"):
            return i
    return len(series_ids) - 1


def update_branch(git: Git, out: Path, commits, trees, input_digest, branches: bool) -> EmitResult:
    branch = head_branch(git)
    if branch is None:
        raise UserError("output repository has a detached HEAD; check out its branch first or "
                        "use --new-branch NAME", file=str(out))
    head = git.rev("HEAD")
    if head is None:  # an empty repository (git init): write the series onto its branch
        return fill_empty(git, out, commits, trees, input_digest, branches, branch)
    if not _ours(git, head):
        subject = git.run("log", "-1", "--format=%h %s (%an)", head).strip()
        raise UserError(f"branch {branch} has commits not written by cni-migrate on top "
                        f"({subject}); they are never rewritten: use --new-branch NAME to "
                        "write the new series next to them", file=str(out))
    try:
        old_state = json.loads(git.show_file(head, STATE_PATH) or b"{}")
    except ValueError:
        old_state = {}
    waves = old_state.get("waves") or [{}]
    if old_state.get("wave") != waves[-1].get("key"):
        # e.g. a wave/NN-key branch is checked out: extending it would fork the series
        raise UserError(f"branch {branch} ends at wave {old_state.get('wave')}, not at the end "
                        "of its series; check out the main branch or use --new-branch NAME",
                        file=str(out))
    old_ids = git.tree_ids(head)
    series_ids = [tree_ids(t) for t in trees]
    total = diff_ids(old_ids, series_ids[-1])
    if not total:
        return EmitResult(out, branch, "up-to-date")
    old_digest = str(old_state.get("input_digest", "unknown"))
    # Which wave each changed file belongs to; one commit per wave that owns changes.
    owned: dict[int, list[str]] = {}
    for path in total.added + total.changed + total.removed:
        owner = _owner_wave(path, series_ids, [c.wave.dirname for c in commits])
        owned.setdefault(owner, []).append(path)
    head_time = int(git.run("log", "-1", "--format=%ct", head).strip())
    tip: dict[str, bytes | str] = dict(old_ids)   # path -> content, or blob id kept as is
    new_commits: list[NewCommit] = []
    written: list[Written] = []
    final_tree = trees[-1]
    for k, i in enumerate(sorted(owned)):
        c = commits[i]
        for path in owned[i]:
            if path in final_tree:
                tip[path] = final_tree[path]
            else:
                tip.pop(path, None)
        tip[STATE_PATH] = final_tree[STATE_PATH]
        tree = dict(tip)
        diff = diff_ids(_ids_of(new_commits[-1].tree) if new_commits else old_ids,
                        _ids_of(tree))
        why = (f"The input changed (digest {short(old_digest)} -> {short(input_digest)}); "
               f"this brings the files of wave {c.wave.dirname} to their new content:\n"
               f"{diff.summary()}")
        body = why + "\n\nThe wave, as planned now:\n\n" + c.body.strip()
        msg = message(f"{c.subject} (update)", body, trailers(c, input_digest))
        new_commits.append(NewCommit(msg, head_time + 60 * (k + 1),
                                     (len(new_commits) - 1) if new_commits else head, tree))
        written.append(Written("", f"{c.subject} (update)", c.wave.key, diff))
    shas = git.fast_import(new_commits)
    hook("import")
    for w, sha in zip(written, shas):
        w.sha = sha
    result = EmitResult(out, branch, "updated", written)
    # Wave and extra branches for the waves that changed, named after the new input so the
    # branches of the first series stay as they were.
    refs: dict[str, str] = {}
    by_wave: list[str | None] = [None] * len(commits)
    by_wave_trees: list[dict | None] = [None] * len(commits)
    for i, sha, nc in zip(sorted(owned), shas, new_commits):
        by_wave[i] = sha
        by_wave_trees[i] = nc.tree
    side_branches(git, commits, by_wave, input_digest, branches, "",
                   f"-{short(input_digest, 8)}", refs, result, skip_existing=True,
                   trees=by_wave_trees)
    move(git, f"refs/heads/{branch}", head, shas[-1], {r: (s, None) for r, s in refs.items()})
    return result


def _ids_of(tree: dict[str, bytes | str]) -> dict[str, str]:
    """Blob ids of a tree whose entries are content (bytes) or existing blob ids (str)."""
    return {p: (d if isinstance(d, str) else blob_id(d)) for p, d in tree.items()}


def fill_empty(git: Git, out: Path, commits, trees, input_digest, branches, branch):
    shas = git.fast_import(series_commits(commits, trees, input_digest, None))
    hook("import")
    result = EmitResult(out, branch, "created",
                        [Written(s, c.subject, c.wave.key) for s, c in zip(shas, commits)])
    refs: dict[str, str] = {}
    side_branches(git, commits, shas, input_digest, branches, "", "", refs, result,
                  trees=trees)
    move(git, f"refs/heads/{branch}", None, shas[-1], {r: (s, None) for r, s in refs.items()})
    return result
