import json

import pytest

from generator.emit.gitrepo import write_repo
from generator.emit.gittree import STATE_PATH
from generator.errors import UserError

from test_emit_helpers import files, git, log, make_commits

DIGEST = "sha256:" + "1" * 64
DIGEST2 = "sha256:" + "2" * 64


def test_one_commit_per_wave_in_order(tmp_path):
    out = tmp_path / "out"
    commits = make_commits()
    r = write_repo(out, commits, input_digest=DIGEST)
    assert r.status == "created" and r.branch == "main"
    subjects = [line.split(" ", 1)[1] for line in log(out)]
    assert subjects == [c.subject for c in reversed(commits)]
    assert [w.sha for w in r.commits] == [line.split()[0] for line in reversed(log(out))]
    # each commit holds the whole tree of its wave, plus PR files and state
    for i, c in enumerate(commits):
        listed = git(out, "ls-tree", "-r", "--name-only", r.commits[i].sha).split()
        assert set(listed) == set(c.tree) | {STATE_PATH} | {f"pr/wave-{j:02d}.md"
                                                           for j in range(i + 1)}
    body = git(out, "log", "-1", "--format=%B", r.commits[0].sha)
    assert "change preflight" in body and f"Cni-Migrate-Input: {DIGEST}" in body
    assert git(out, "log", "-1", "--format=%an <%ae>|%cn <%ce>").strip() == \
        "cni-migrate <cni-migrate@localhost>|cni-migrate <cni-migrate@localhost>"
    # work tree checked out and clean
    assert files(out)["cilium/values.yaml"] == b"stage: final-values\n"
    assert git(out, "status", "--porcelain") == ""
    state = json.loads(files(out)[STATE_PATH])
    assert state["input_digest"] == DIGEST
    assert [w["key"] for w in state["waves"]] == [c.wave.key for c in commits]
    assert r.pr_files == [f"pr/wave-{i:02d}.md" for i in range(4)]


def test_same_input_same_shas_in_two_directories(tmp_path):
    a = write_repo(tmp_path / "a", make_commits(extra=True), input_digest=DIGEST, branches=True)
    b = write_repo(tmp_path / "b", make_commits(extra=True), input_digest=DIGEST, branches=True)
    assert [w.sha for w in a.commits] == [w.sha for w in b.commits]
    assert a.branches == b.branches
    c = write_repo(tmp_path / "c", make_commits(), input_digest=DIGEST2)
    assert c.commits[-1].sha != a.commits[-1].sha  # dates (and state) follow the digest


def test_branches_are_stacked_per_wave(tmp_path):
    out = tmp_path / "out"
    r = write_repo(out, make_commits(extra=True), input_digest=DIGEST, branches=True)
    heads = git(out, "for-each-ref", "--format=%(refname:short) %(objectname)",
                "refs/heads").splitlines()
    names = dict(line.split() for line in heads)
    assert names["wave/00-preflight"] == r.commits[0].sha
    assert names["wave/03-final-values"] == r.commits[3].sha == names["main"]
    # stacked: each wave branch is the parent of the next
    assert git(out, "rev-parse", "wave/02-nodes-01^").strip() == names["wave/01-cilium-install"]
    # extra branches written as given, on top of their wave
    rb = "rollback/01-cilium-install"
    assert git(out, "show", f"{rb}:README.md") == "rollback\n"
    assert git(out, "rev-parse", f"{rb}^").strip() == r.commits[1].sha


def test_rerun_same_input_is_up_to_date(tmp_path):
    out = tmp_path / "out"
    write_repo(out, make_commits(), input_digest=DIGEST)
    before = log(out)
    r = write_repo(out, make_commits(), input_digest=DIGEST)
    assert r.status == "up-to-date" and r.commits == []
    assert log(out) == before


def test_rerun_changed_input_adds_commits_on_top(tmp_path):
    out = tmp_path / "out"
    first = write_repo(out, make_commits("a"), input_digest=DIGEST)
    r = write_repo(out, make_commits("b"), input_digest=DIGEST2)
    assert r.status == "updated"
    history = log(out)
    assert len(history) == 5  # old series kept, one new commit: only the node wave changed
    assert history[1].split()[0] == first.commits[-1].sha
    assert r.commits[0].wave_key == "nodes-01"
    assert r.commits[0].diff.changed == ["waves/02-nodes-01/objects.yaml"]
    body = git(out, "log", "-1", "--format=%B")
    assert "changed: waves/02-nodes-01/objects.yaml" in body and DIGEST2[:12] in body
    assert b"variant: b" in files(out)["waves/02-nodes-01/objects.yaml"]
    assert files(out)["cilium/values.yaml"] == b"stage: final-values\n"  # never stepped back
    assert git(out, "status", "--porcelain") == ""
    # and now it is up to date with the new input
    assert write_repo(out, make_commits("b"), input_digest=DIGEST2).status == "up-to-date"


def test_rerun_with_added_wave_removes_and_adds_files(tmp_path):
    out = tmp_path / "out"
    write_repo(out, make_commits(), input_digest=DIGEST)
    keys = ["preflight", "cilium-install", "nodes-01", "nodes-02", "final-values"]
    r = write_repo(out, make_commits(keys=keys), input_digest=DIGEST2)
    got = files(out)
    assert "waves/03-nodes-02/objects.yaml" in got and "waves/04-final-values/objects.yaml" in got
    assert "waves/03-final-values/objects.yaml" not in got
    assert {w.wave_key for w in r.commits} == {"nodes-02", "final-values"}


def test_user_commit_on_top_is_never_rewritten(tmp_path):
    out = tmp_path / "out"
    write_repo(out, make_commits("a"), input_digest=DIGEST)
    (out / "NOTES.md").write_text("mine\n")
    git(out, "add", "NOTES.md")
    git(out, "-c", "user.name=me", "-c", "user.email=me@x", "commit", "-qm", "my notes")
    mine = log(out)
    with pytest.raises(UserError, match="not written by cni-migrate.*--new-branch"):
        write_repo(out, make_commits("b"), input_digest=DIGEST2)
    assert log(out) == mine
    r = write_repo(out, make_commits("b"), input_digest=DIGEST2, new_branch="regen",
                   branches=True)
    assert r.status == "new-branch" and log(out) == mine  # main untouched, work tree too
    assert len(log(out, "regen")) == len(mine) + 4
    assert git(out, "rev-parse", "regen~4").strip() == mine[0].split()[0]
    assert "regen-wave/00-preflight" in r.branches
    assert (out / "NOTES.md").exists()
    for i in range(4):  # the user's file rides along on every commit of the new series
        assert git(out, "show", f"regen~{i}:NOTES.md") == "mine\n"
    # same again: the branch already holds this series
    assert write_repo(out, make_commits("b"), input_digest=DIGEST2,
                      new_branch="regen").status == "up-to-date"
    with pytest.raises(UserError, match="already exists"):
        write_repo(out, make_commits("c"), input_digest=DIGEST, new_branch="regen")


def test_dirty_repo_is_refused_listing_files(tmp_path):
    out = tmp_path / "out"
    write_repo(out, make_commits(), input_digest=DIGEST)
    (out / "README.md").write_text("edited\n")
    (out / "stray.txt").write_text("x\n")
    before = log(out)
    with pytest.raises(UserError) as e:
        write_repo(out, make_commits("b"), input_digest=DIGEST2)
    assert "README.md" in str(e.value) and "stray.txt" in str(e.value)
    assert "\n" not in e.value.one_line() and str(out) in e.value.one_line()
    assert log(out) == before and (out / "README.md").read_text() == "edited\n"


def test_non_git_non_empty_dir_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "something").write_text("x")
    with pytest.raises(UserError, match="not a git repository"):
        write_repo(out, make_commits(), input_digest=DIGEST)
    assert sorted(p.name for p in out.iterdir()) == ["something"]


def test_empty_dir_and_empty_repo_are_filled(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert write_repo(empty, make_commits(), input_digest=DIGEST).status == "created"
    assert len(log(empty)) == 4
    inited = tmp_path / "inited"
    git(tmp_path, "init", "-q", "-b", "trunk", str(inited))
    r = write_repo(inited, make_commits(), input_digest=DIGEST)
    assert r.branch == "trunk" and len(log(inited)) == 4
    assert git(inited, "status", "--porcelain") == ""


def test_output_inside_another_repository(tmp_path):
    git(tmp_path, "init", "-q", str(tmp_path / "outer"))
    out = tmp_path / "outer" / "out" / "cluster"
    write_repo(out, make_commits(), input_digest=DIGEST)
    assert (out / ".git").is_dir() and len(log(out)) == 4
    with pytest.raises(Exception):
        git(tmp_path / "outer", "rev-parse", "HEAD")  # the outer repository got no commit


def test_unsafe_tree_paths_are_rejected(tmp_path):
    commits = make_commits()
    commits[0].tree["../escape"] = b"x"
    with pytest.raises(ValueError, match="unsafe path"):
        write_repo(tmp_path / "out", commits, input_digest=DIGEST)
    assert not (tmp_path / "out").exists()


def test_invalid_new_branch_name(tmp_path):
    out = tmp_path / "out"
    write_repo(out, make_commits(), input_digest=DIGEST)
    with pytest.raises(UserError, match="invalid branch name"):
        write_repo(out, make_commits("b"), input_digest=DIGEST2, new_branch="bad..name")


def test_update_is_deterministic_and_names_new_branches(tmp_path):
    results = []
    for name in ("a", "b"):
        out = tmp_path / name
        write_repo(out, make_commits("a", extra=True), input_digest=DIGEST, branches=True)
        results.append(write_repo(out, make_commits("b", extra=True), input_digest=DIGEST2,
                                  branches=True))
    assert [w.sha for w in results[0].commits] == [w.sha for w in results[1].commits]
    assert sorted(results[0].branches) == ["rollback/02-nodes-01-22222222",
                                           "wave/02-nodes-01-22222222"]
    out = tmp_path / "a"
    assert git(out, "rev-parse", "wave/02-nodes-01").strip() != \
        git(out, "rev-parse", "wave/02-nodes-01-22222222").strip()  # the old one is kept


def test_wave_branch_checked_out_is_not_extended(tmp_path):
    out = tmp_path / "out"
    write_repo(out, make_commits(), input_digest=DIGEST, branches=True)
    git(out, "checkout", "-q", "wave/01-cilium-install")
    with pytest.raises(UserError, match="ends at wave cilium-install.*--new-branch"):
        write_repo(out, make_commits("b"), input_digest=DIGEST2)
    assert len(log(out)) == 2


def test_renamed_file_is_removed_by_its_own_wave(tmp_path):
    out = tmp_path / "out"
    write_repo(out, make_commits(), input_digest=DIGEST)
    commits = make_commits()
    for c in commits[2:]:
        c.tree["waves/02-nodes-01/renamed.yaml"] = c.tree.pop("waves/02-nodes-01/objects.yaml")
    r = write_repo(out, commits, input_digest=DIGEST2)
    assert [(w.wave_key, w.diff.added, w.diff.removed) for w in r.commits] == [
        ("nodes-01", ["waves/02-nodes-01/renamed.yaml"], ["waves/02-nodes-01/objects.yaml"])]


def test_output_path_is_a_file(tmp_path):
    out = tmp_path / "out"
    out.write_text("x")
    with pytest.raises(UserError, match="not a directory"):
        write_repo(out, make_commits(), input_digest=DIGEST)
    assert out.read_text() == "x"


def test_linked_worktree_as_output(tmp_path):
    """A DIR whose .git is a file (git worktree add): the journal lives in its real git dir."""
    main_repo = tmp_path / "main"
    write_repo(main_repo, make_commits("a"), input_digest=DIGEST)
    linked = tmp_path / "linked"
    git(main_repo, "worktree", "add", "-q", "-b", "other", str(linked))
    assert (linked / ".git").is_file()
    r = write_repo(linked, make_commits("b"), input_digest=DIGEST2)
    assert r.status == "updated" and r.branch == "other"
    assert b"variant: b" in files(linked)["waves/02-nodes-01/objects.yaml"]
    assert git(linked, "status", "--porcelain") == ""
    assert len(log(main_repo)) == 4  # main's branch untouched


def test_same_shas_whatever_the_user_git_config(tmp_path, monkeypatch):
    """Another machine: a different identity, CRLF conversion, signing, another default
    branch and object format in ~/.gitconfig do not change the commits."""
    reference = write_repo(tmp_path / "ref", make_commits(), input_digest=DIGEST)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Someone Else\n\temail = else@example.org\n"
        "[core]\n\tautocrlf = true\n[commit]\n\tgpgsign = true\n"
        "[init]\n\tdefaultBranch = trunk\n\tdefaultObjectFormat = sha256\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_AUTHOR_NAME", "ignored")
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    other = write_repo(tmp_path / "other", make_commits(), input_digest=DIGEST)
    assert [w.sha for w in other.commits] == [w.sha for w in reference.commits]
    assert other.branch == "main"


def test_detached_head_is_refused_unless_new_branch(tmp_path):
    from generator.emit.gitrepo import preflight
    out = tmp_path / "out"
    write_repo(out, make_commits(), input_digest=DIGEST)
    git(out, "checkout", "-q", "--detach", "HEAD")
    with pytest.raises(UserError, match="detached HEAD"):
        preflight(out)
    with pytest.raises(UserError, match="detached HEAD"):
        write_repo(out, make_commits("b"), input_digest=DIGEST2)
    preflight(out, new_branch="again")
    assert write_repo(out, make_commits("b"), input_digest=DIGEST2,
                      new_branch="again").status == "new-branch"
