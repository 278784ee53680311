"""Command-line entry point.

Each subcommand lives in generator/commands/<name>.py and exposes
    add_arguments(parser: argparse.ArgumentParser) -> None
    run(args: argparse.Namespace) -> int
Modules are imported only for the command that runs (the kubernetes client costs ~0.3 s to import
and is needed only on live paths).

Errors: a UserError is printed as one line on stderr, exit 2, no traceback (--debug shows it).
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import sys

from .errors import UserError

# name -> (module, one-line help)
COMMANDS = {
    "plan": ("generator.commands.plan", "print the wave table for a cluster snapshot"),
    "generate": ("generator.commands.generate", "write the migration as one git commit per wave"),
    "translate": ("generator.commands.translate", "translate Calico policies to Cilium policies"),
    "verify": ("generator.commands.verify", "check Cilium policies keep every Calico verdict"),
    "snapshot": ("generator.commands.snapshot", "read a live cluster into a snapshot directory"),
    "lint": ("generator.commands.lint", "check an output tree: restricted pods, RBAC, images"),
}


# A 50,000-pod snapshot is millions of small live objects. With CPython's default gen-0
# threshold (700) the collector re-walks all of them over and over: about half of the
# snapshot load time at size L (bench/README.md). Collect less often; memory is unchanged.
GC_THRESHOLD = (100_000, 50, 100)


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLD)


@contextlib.contextmanager
def frozen_heap():
    """Inside: what is alive now (the loaded inventory, which lives until the command ends) is
    out of the collector's view, so later full collections do not walk 50,000 pods again."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, object | None]:
    parser = argparse.ArgumentParser(prog="cni-migrate", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if a in COMMANDS), None)
    module = None
    for name, (modname, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(modname)
            module.add_arguments(p)
    return parser, module


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    tune_gc()
    try:
        parser, module = build_parser(argv)
        args = parser.parse_args(argv)
        if module is None:
            parser.print_help()
            return 2
        return int(module.run(args) or 0)
    except UserError as e:
        if debug:
            raise
        print(f"cni-migrate: error: {e.one_line()}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        if debug:
            raise
        print("cni-migrate: interrupted; nothing half-written was kept", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
