"""e2e/cluster.py itself: a component that cannot be built is named, a built one is reused."""
from __future__ import annotations

import pytest

from e2e import cluster as cl


def test_a_component_that_cannot_be_built_says_which_and_why(tmp_path, monkeypatch):
    monkeypatch.setenv("CNI_MIGRATE_E2E_CACHE", str(tmp_path))
    monkeypatch.setattr(cl, "go_command", lambda: None)
    with pytest.raises(cl.BuildError) as e:
        cl.build(cl.COMPONENTS[1])
    assert str(e.value) == f"cannot build etcd {cl.ETCD}: no `go` on PATH"


def test_built_components_are_reused_from_the_cache(kube):
    # the session's cluster built (or found) everything: a second build does nothing
    assert all(cl.build(c) == 0.0 for c in cl.COMPONENTS)
    assert all(cl.bin_path(b).exists() for c in cl.COMPONENTS for b in c.binaries)
    assert cl.cache_dir().name == "e2e"
