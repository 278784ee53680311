"""The end-to-end tier: one real control plane (e2e/cluster.py) for the whole test run.

The binaries are built from source on first use into a cache outside the repo (see
e2e/cluster.py); a build or start failure fails the tests that need the cluster with a message
naming the binary, never a skip. Build and start-up times are printed in the test summary.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from harness import Kube, cl, install_crds

_TIMES: list[str] = []


def pytest_terminal_summary(terminalreporter):
    if _TIMES:
        terminalreporter.write_sep("-", "e2e control plane")
        for line in _TIMES:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def kube(tmp_path_factory, shared) -> Kube:
    t0 = time.monotonic()
    try:
        built = cl.build_all()
    except cl.BuildError as e:
        pytest.fail(f"e2e: {e}", pytrace=False)
    for key, secs in built.items():
        _TIMES.append(f"{key}: {'cached in ' + str(cl.cache_dir()) if not secs else f'built in {secs:.0f}s'}")
    t1 = time.monotonic()
    c = cl.Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.up()
    except (cl.StartError, RuntimeError) as e:
        c.down()
        pytest.fail(f"e2e: cannot start the control plane: {e}", pytrace=False)
    _TIMES.append(f"build {t1 - t0:.1f}s, start {time.monotonic() - t1:.1f}s "
                  f"(kube-apiserver {cl.KUBERNETES}, etcd {cl.ETCD}, kwok {cl.KWOK})")
    k = Kube(c)
    install_crds(k, shared)
    k.cni.start()
    k.pods.start()
    yield k
    k.cni.stop.set()
    k.pods.stop.set()
    c.down()


