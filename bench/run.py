"""Scale benchmark: `generate` end to end on a synthetic Canal cluster, stage by stage.

    python bench/run.py --size S|M|L [--engine argocd|flux] [--keep DIR] [--profile FILE]
                        [--skip gap|translate|verify|probes]...   (see bench/README.md)

The cluster is written by bench/synth.py in a child process (timed apart as "synth", and kept
out of this process's peak memory). Then the same functions `cni-migrate generate` calls run
in-process, each timed: load, plan, jobs, read, translate, verify, render, commit, lint.
pipeline.gather() runs jobs + read + translate + verify in one call; rather than repeat its
logic here, its three policy adapters are wrapped with timers and "jobs" is the remainder.

The floor, in the same run: every distinct YAML file of every commit's tree re-dumped with
pyyaml's C dumper, and every tree written with one `git fast-import` stream into a scratch repo
(one commit per wave, each sending only the files that changed). floor_ratio =
(render + commit) / floor_s. The last line is always:

    size=L total_s=... peak_mib=... floor_s=... floor_ratio=...
"""
from __future__ import annotations

import argparse
import faulthandler
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from generator import cli, pipeline  # noqa: E402
from generator.emit.gitrepo import write_repo  # noqa: E402
from generator.inventory.snapshot import load_snapshot  # noqa: E402
from generator.lint import lint_files  # noqa: E402
from generator.plan.model import DEFAULT_IMAGES, Options  # noqa: E402
from generator.plan.planner import check_options, make_plan  # noqa: E402

STAGES = ("load", "plan", "jobs", "read", "gap", "translate", "verify", "probes", "render",
          "commit", "lint")
# pipeline.gather() calls these module-level names; each is wrapped with a timer
WRAPPED = {"read_policies": "read", "_gap": "gap", "translate": "translate",
           "verify": "verify", "_probes": "probes"}
SKIPPABLE = ("gap", "translate", "verify", "probes")
GIT_ENV = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class Clock:
    def __init__(self):
        self.times: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - t0

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            with self.stage(name):
                return fn(*args, **kwargs)
        return timed


def _skipped_verify(*_args, **_kwargs):
    from generator.verify.compare import VerifyResult
    return VerifyResult("skipped", 0, 0, 0, 0, 0, [], ["skipped: bench/run.py --skip verify"])


def _skip(stage: str):
    """The stand-in for a skipped stage (benchmark only, labelled SKIPPED in the output):
    translate drops the policies wave's content (pipeline._policies returns None), verify
    reports nothing judged, gap and probes add nothing."""
    if stage == "verify":
        return "verify", _skipped_verify
    name = {"translate": "_policies", "gap": "_gap", "probes": "_probes"}[stage]
    return name, lambda *_a, **_k: None


def synth(size: str, out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "bench" / "synth.py"), "--size", size,
                    "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def generate(snapshot: Path, out: Path, engine: str, clock: Clock, skip: frozenset = frozenset()):
    """What generator/commands/generate.py run() does, stage by stage. A stage in `skip`
    (gap, translate, verify, probes) is replaced by a stand-in (see _skip): for measuring the
    others when one is too slow to finish."""
    cli.tune_gc()  # as cli.main() does before any command
    options = Options(engine=engine, images=dict(DEFAULT_IMAGES))
    check_options(options)
    with clock.stage("load"):
        inventory = load_snapshot([str(snapshot)])
    heap = cli.frozen_heap()   # as generate does, until the end
    heap.__enter__()
    with clock.stage("plan"):
        inventory = pipeline.apply_service_cidr(inventory, options)
        plan = make_plan(inventory, options)
    wrapped = {n: st for n, st in WRAPPED.items() if hasattr(pipeline, n)}
    saved = {n: getattr(pipeline, n) for n in set(wrapped) | {_skip(st)[0] for st in skip}}
    try:
        for n, st in wrapped.items():
            setattr(pipeline, n, clock.wrap(st, saved[n]))
        for st in skip:
            n, fn = _skip(st)
            setattr(pipeline, n, fn)
        before = sum(clock.times.get(st, 0.0) for st in wrapped.values())
        t0 = time.perf_counter()
        inputs, translation = pipeline.gather(plan, inventory)
        inner = sum(clock.times.get(st, 0.0) for st in wrapped.values()) - before
        clock.times["jobs"] = clock.times.get("jobs", 0.0) + time.perf_counter() - t0 - inner
    finally:
        for n, fn in saved.items():
            setattr(pipeline, n, fn)
    with clock.stage("render"):
        commits = pipeline.render(plan, inventory, translation, inputs=inputs)
    meta = {"cluster": plan.cluster_name, "engine": options.engine,
            "cilium_version": options.cilium_version, "source_cni": plan.source_cni,
            "images": dict(sorted(options.images.items()))}
    with clock.stage("commit"):
        write_repo(out, commits, input_digest=plan.input_digest,
                   branch=options.repo_revision, meta=meta)
    with clock.stage("lint"):
        lint_files(commits[-1].tree, images=options.images)
    heap.__exit__(None, None, None)
    return plan, commits


# ----------------------------------------------------------------------------- floor

def floor_dump(commits) -> tuple[float, int]:
    """Re-dump every distinct YAML file of every tree with the C dumper (parsing is untimed).
    Distinct contents only: a file carried unchanged into later waves need not be dumped
    again, so this is the least YAML work any renderer must do."""
    docs = []
    seen: set[bytes] = set()
    for c in commits:
        for path, data in c.tree.items():
            if path.endswith((".yaml", ".yml")) and data not in seen:
                seen.add(data)
                docs.append(list(yaml.load_all(data, Loader=yaml.CSafeLoader)))
    t0 = time.perf_counter()
    for d in docs:
        yaml.dump_all(d, Dumper=yaml.CSafeDumper, sort_keys=False, default_flow_style=False,
                      allow_unicode=True, width=100, explicit_start=len(d) > 1)
    return time.perf_counter() - t0, len(docs)


def fast_import_stream(commits) -> bytes:
    """Blobs once each, then one commit per wave carrying only the paths that changed."""
    chunks, marks = [], {}
    for c in commits:
        for data in c.tree.values():
            if data not in marks:
                marks[data] = len(marks) + 1
                chunks.append(b"blob\nmark :%d\ndata %d\n%s\n" % (marks[data], len(data), data))
    prev: dict[str, bytes] = {}
    for i, c in enumerate(commits):
        msg = c.subject.encode()
        chunks.append(b"commit refs/heads/main\ncommitter bench <bench@localhost> %d +0000\n"
                      b"data %d\n%s\n" % (1704067200 + 60 * i, len(msg), msg))
        for path in sorted(set(prev) - set(c.tree)):
            chunks.append(b"D %s\n" % path.encode())
        for path in sorted(c.tree):
            data = c.tree[path]
            if prev.get(path) is not data and prev.get(path) != data:
                chunks.append(b"M 100644 :%d %s\n" % (marks[data], path.encode()))
        chunks.append(b"\n")
        prev = c.tree
    chunks.append(b"done\n")
    return b"".join(chunks)


def floor_git(commits, scratch: Path) -> float:
    t0 = time.perf_counter()
    stream = fast_import_stream(commits)
    subprocess.run(["git", "init", "-q", str(scratch)], check=True, env=GIT_ENV)
    subprocess.run(["git", "fast-import", "--quiet", "--done"], input=stream, check=True,
                   cwd=scratch, env=GIT_ENV)
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------- main

def run(size: str, engine: str, work: Path, profile: str | None = None,
        skip: frozenset = frozenset()) -> dict:
    snapshot, out = work / f"snapshot-{size}", work / f"out-{size}"
    row = {"synth": synth(size, snapshot)}
    print(f"stage=synth s={row['synth']:.2f}", flush=True)
    clock = Clock()
    if profile:
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
    plan, commits = generate(snapshot, out, engine, clock, skip)
    if profile:
        prof.disable()
        prof.dump_stats(profile)
    peak = peak_mib()  # before the floor, which holds its own copies
    for name in STAGES:
        note = " SKIPPED (--skip): total_s leaves it out" if name in skip else ""
        print(f"stage={name} s={clock.times.get(name, 0.0):.2f}{note}", flush=True)
    total = sum(clock.times.values())
    dump_s, n_files = floor_dump(commits)
    git_s = floor_git(commits, work / f"floor-{size}")
    floor = dump_s + git_s
    files = len(commits[-1].tree)
    print(f"floor dump_s={dump_s:.2f} ({n_files} distinct YAML files) git_s={git_s:.2f} "
          f"({len(commits)} commits, {files} files in the last tree)", flush=True)
    ratio = (clock.times["render"] + clock.times["commit"]) / floor if floor else 0.0
    prs = {p: len(d.decode()) for p, d in commits[-1].tree.items() if p.startswith("pr/")}
    big = max(prs, key=prs.get) if prs else "-"
    print(f"pr largest={big} chars={prs.get(big, 0)} (a GitHub PR body holds 65536)")
    load = os.getloadavg()
    print(f"machine cpus={os.cpu_count()} load={load[0]:.2f},{load[1]:.2f},{load[2]:.2f} "
          f"children_peak_mib={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f}")
    print(f"size={size} total_s={total:.2f} peak_mib={peak:.0f} floor_s={floor:.2f} "
          f"floor_ratio={ratio:.2f}", flush=True)
    return {"total_s": total, "peak_mib": peak, "floor_s": floor, "floor_ratio": ratio,
            **clock.times}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("S", "M", "L"), default="S")
    ap.add_argument("--engine", choices=("argocd", "flux"), default="argocd")
    ap.add_argument("--keep", metavar="DIR",
                    help="write the snapshot, output repo and floor repo here and keep them")
    ap.add_argument("--profile", metavar="FILE", help="cProfile the timed stages into FILE")
    ap.add_argument("--skip", action="append", default=[], choices=SKIPPABLE,
                    help="do not run this stage (too slow to finish); repeatable")
    a = ap.parse_args()
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 PID` prints where a slow run is
    if a.keep:
        work = Path(a.keep)
        work.mkdir(parents=True, exist_ok=True)
        for p in (work / f"out-{a.size}", work / f"floor-{a.size}", work / f"snapshot-{a.size}"):
            if p.exists():
                subprocess.run(["rm", "-rf", str(p)], check=True)
        run(a.size, a.engine, work, a.profile, frozenset(a.skip))
    else:
        with tempfile.TemporaryDirectory(prefix="cni-bench-") as tmp:
            run(a.size, a.engine, Path(tmp), a.profile, frozenset(a.skip))
    return 0


if __name__ == "__main__":
    sys.exit(main())
