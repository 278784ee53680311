import subprocess
import sys


def test_cli_help_lists_commands():
    r = subprocess.run([sys.executable, "-m", "generator", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for cmd in ("plan", "generate", "translate", "verify", "snapshot", "lint"):
        assert cmd in r.stdout
