"""bench/run.py runs end to end on size S and ends with its one summary line (not timed).

verify is skipped here only to keep the suite fast (it dominates S; see bench/README.md)."""
import re
import subprocess
import sys

LAST = re.compile(r"^size=S total_s=[0-9.]+ peak_mib=[0-9]+ floor_s=[0-9.]+ "
                  r"floor_ratio=[0-9.]+$")


def test_bench_size_s_prints_summary(root, tmp_path):
    r = subprocess.run([sys.executable, str(root / "bench" / "run.py"), "--size", "S",
                        "--skip", "verify", "--keep", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert LAST.match(lines[-1]), lines[-1]
    stages = {m.group(1) for m in map(re.compile(r"^stage=(\w+) s=").match, lines) if m}
    assert {"synth", "load", "plan", "jobs", "read", "gap", "translate", "probes", "render",
            "commit", "lint"} <= stages
    # the output repository is real: one commit per wave, same count as the floor's
    log = subprocess.run(["git", "-C", str(tmp_path / "out-S"), "rev-list", "--count", "HEAD"],
                         capture_output=True, text=True, check=True).stdout.strip()
    floor = subprocess.run(["git", "-C", str(tmp_path / "floor-S"), "rev-list", "--count",
                            "main"], capture_output=True, text=True, check=True).stdout.strip()
    assert int(log) == int(floor) > 1
