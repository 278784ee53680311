"""`cni-migrate snapshot`: read a live cluster into a snapshot directory (read-only access)."""
from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context (default: the current context)")
    p.add_argument("--out", metavar="DIR", help="snapshot directory to write")
    p.add_argument("--force", action="store_true",
                   help="replace --out even if it is a non-empty directory that is not a snapshot")
    p.add_argument("--page-size", type=int, default=500, metavar="N",
                   help="objects per list request (default 500)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="per-request timeout (default 30)")
    p.add_argument("--print-clusterrole", action="store_true",
                   help="print the minimal read-only ClusterRole this command needs, and exit")


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..live.rbac import clusterrole_yaml

    if args.print_clusterrole:
        sys.stdout.write(clusterrole_yaml())
        return 0
    if not args.out:
        raise UserError("snapshot needs --out DIR (or --print-clusterrole)")
    if args.page_size < 1:
        raise UserError("--page-size must be at least 1")
    if args.timeout <= 0:
        raise UserError("--timeout must be positive")

    from ..live.reader import read_cluster
    from ..live.snapshot import write_snapshot

    progress = _Progress(sys.stderr)
    try:
        read = read_cluster(args.kubeconfig, args.context, page_size=args.page_size,
                            timeout=args.timeout, progress=progress)
    finally:
        progress.done()
    out = write_snapshot(read, args.out, force=args.force)
    total = sum(read.counts().values())
    print(f"wrote {total} objects in {len(read.files)} files to {out} ({read.source})")
    for note in read.notes:
        print(f"  note: {note}")
    return 0


class _Progress:
    """One rewritten status line on stderr, only when stderr is a terminal."""

    def __init__(self, stream):
        self.stream = stream
        self.on = bool(getattr(stream, "isatty", lambda: False)())
        self.width = 0

    def __call__(self, msg: str) -> None:
        if self.on:
            text = f"cni-migrate: {msg}..."
            self.stream.write("\r" + text.ljust(self.width))
            self.stream.flush()
            self.width = len(text)

    def done(self) -> None:
        if self.on and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
