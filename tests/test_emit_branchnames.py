"""valid_branch_name answers some names without running git: it must agree with git."""
from __future__ import annotations

import subprocess

from generator.emit.git import _PLAIN_BRANCH, _git_env, valid_branch_name

NAMES = ["main", "rollback/wave-03", "wave/04-nodes-02", "wave/04-nodes-02-ab12cd34", "a",
         "a/b/c", "_x", "x_", "x-", "HEAD", "-a", "a//b", "a/", "/a", "@", "a.lock", "a..b",
         "a b", "a~1", "a^", "a:b", "a?", "a*", "a[", "a\\b", ".a", "a/.b", "FETCH_HEAD",
         "cni-migrate-1/rollback/wave-03", "x" * 200, "é"]


def git_says(name: str) -> bool:
    r = subprocess.run(["git", "check-ref-format", "--branch", name], capture_output=True,
                       env=_git_env())
    return r.returncode == 0 and not name.startswith("-")


def test_agrees_with_git():
    assert any(_PLAIN_BRANCH.fullmatch(n) for n in NAMES)     # the fast answer is exercised
    for name in NAMES:
        assert valid_branch_name(name) == git_says(name), name
