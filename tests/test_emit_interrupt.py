"""Runs killed or interrupted midway leave the repository as it was or fully updated."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from generator.emit.gitrepo import write_repo

from test_emit_helpers import files, git, log, make_commits

ROOT = Path(__file__).resolve().parent.parent
DIGEST = "sha256:" + "1" * 64
DIGEST2 = "sha256:" + "2" * 64

SCRIPT = """
import sys
sys.path[:0] = [{root!r}, {tests!r}]
from generator.emit.gitrepo import write_repo
from test_emit_helpers import make_commits
try:
    r = write_repo(sys.argv[1], make_commits(sys.argv[2], extra=True), input_digest=sys.argv[3],
                   branches=True)
    print(r.status)
except KeyboardInterrupt:
    sys.exit(130)
"""


def run(out, variant, digest, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_MIGRATE_TEST")}
    env.update(env_extra or {})
    code = SCRIPT.format(root=str(ROOT), tests=str(ROOT / "tests"))
    return subprocess.run([sys.executable, "-c", code, str(out), variant, digest],
                          capture_output=True, text=True, env=env)


def snapshot(out):
    return (log(out), files(out),
            git(out, "for-each-ref", "--format=%(refname) %(objectname)"),
            git(out, "status", "--porcelain", "--untracked-files=all"))


def first_series(out):
    write_repo(out, make_commits("a", extra=True), input_digest=DIGEST, branches=True)


@pytest.mark.parametrize("mode,step", [
    ("CRASH", "import"), ("CRASH", "ref"), ("CRASH", "worktree"), ("INTERRUPT", "ref"),
])
def test_update_killed_midway(tmp_path, mode, step):
    out = tmp_path / "out"
    first_series(out)
    before = snapshot(out)
    r = run(out, "b", DIGEST2, {f"CNI_MIGRATE_TEST_{mode}_AFTER": step})
    assert r.returncode == (75 if mode == "CRASH" else 130), r.stderr
    if step == "import":  # nothing visible was touched yet
        assert snapshot(out) == before
    if mode == "INTERRUPT" and step != "import":
        # the interrupt came after the branch moved: the run finished the work tree itself
        assert git(out, "status", "--porcelain", "--untracked-files=all") == ""
        assert b"variant: b" in files(out)["waves/02-nodes-01/objects.yaml"]
    again = write_repo(out, make_commits("b", extra=True), input_digest=DIGEST2, branches=True)
    assert again.status == ("up-to-date" if step != "import" else "updated")
    history = log(out)
    assert len(history) == len(before[0]) + 1 and history[1:] == before[0]
    got = files(out)
    assert b"variant: b" in got["waves/02-nodes-01/objects.yaml"]
    assert git(out, "status", "--porcelain", "--untracked-files=all") == ""
    assert not (out / ".git" / "cni-migrate-journal.json").exists()
    assert "refs/cni-migrate" not in git(out, "for-each-ref")


@pytest.mark.parametrize("mode,step", [("CRASH", "build"), ("INTERRUPT", "build")])
def test_create_killed_midway_leaves_nothing(tmp_path, mode, step):
    out = tmp_path / "out"
    r = run(out, "a", DIGEST, {f"CNI_MIGRATE_TEST_{mode}_AFTER": step})
    assert r.returncode != 0
    assert not out.exists()
    first_series(out)
    assert len(log(out)) == 4
    # the temporary build directory of the killed run is gone too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("step,updated", [("import", False), ("ref", True)])
def test_real_sigint(tmp_path, step, updated):
    """A real SIGINT: before the branch moves, the run stops and nothing changed; while branch
    and work tree move, the signal waits until both are done."""
    out = tmp_path / "out"
    first_series(out)
    before = snapshot(out)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_MIGRATE_TEST")}
    env["CNI_MIGRATE_TEST_PAUSE_AFTER"] = step
    code = SCRIPT.format(root=str(ROOT), tests=str(ROOT / "tests"))
    p = subprocess.Popen([sys.executable, "-c", code, str(out), "b", DIGEST2], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stderr.readline() == b"paused\n"
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=30)
    assert p.returncode == 130
    now = snapshot(out)
    assert not (out / ".git" / "cni-migrate-journal.json").exists()
    if updated:
        assert len(now[0]) == len(before[0]) + 1 and now[3] == ""
        assert b"variant: b" in now[1]["waves/02-nodes-01/objects.yaml"]
    else:
        assert now == before
