"""Small pure helpers over file trees (path -> bytes) and git object ids.

Blob ids are computed here the way git does (sha1 over "blob <len>\\0<data>"), so trees can be
compared with what a repository holds (`git ls-tree -r`) without writing anything.
"""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass

STATE_PATH = ".cni-migrate/state.json"


@functools.lru_cache(maxsize=1 << 16)
def blob_id(data: bytes) -> str:
    # Cached: every wave's tree repeats most of the previous wave's (identical) contents.
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def check_paths(tree: dict[str, bytes], what: str, checked: set[str] | None = None) -> None:
    """Reject paths git or the work tree would misread: a bug in the caller, not user input.
    checked: paths already found safe (trees repeat most paths); found-safe ones are added."""
    for path, data in tree.items():
        if not isinstance(data, bytes):
            raise ValueError(f"{what}: content of {path} is {type(data).__name__}, not bytes")
        if checked is not None and path in checked:
            continue
        parts = path.split("/")
        if (not path or path.startswith("/") or any(p in ("", ".", "..", ".git") for p in parts)
                or "\n" in path or "\0" in path or path.startswith('"')):
            raise ValueError(f"{what}: unsafe path in tree: {path!r}")
        if checked is not None:
            checked.add(path)


def tree_ids(tree: dict[str, bytes]) -> dict[str, str]:
    return {p: blob_id(d) for p, d in tree.items()}


def tree_digest(tree: dict[str, bytes], *, without_state: bool = True) -> str:
    """sha256 over sorted (path, blob id): a stable name for a tree's content."""
    skip = STATE_PATH if without_state else None
    return hashlib.sha256(b"".join(
        b"%s\0%s\n" % (path.encode(), blob_id(tree[path]).encode())
        for path in sorted(tree) if path != skip)).hexdigest()


@dataclass
class Diff:
    added: list[str]
    changed: list[str]
    removed: list[str]

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def summary(self, limit: int = 20) -> str:
        lines = []
        for label, paths in (("added", self.added), ("changed", self.changed),
                             ("removed", self.removed)):
            for p in paths[:limit]:
                lines.append(f"  {label}: {p}")
            if len(paths) > limit:
                lines.append(f"  {label}: ... and {len(paths) - limit} more")
        return "\n".join(lines)


def diff_ids(old: dict[str, str], new: dict[str, str], *, ignore=(STATE_PATH,)) -> Diff:
    """Difference between two {path: blob id} maps."""
    keys_old = {p for p in old if p not in ignore}
    keys_new = {p for p in new if p not in ignore}
    return Diff(added=sorted(keys_new - keys_old),
                changed=sorted(p for p in keys_old & keys_new if old[p] != new[p]),
                removed=sorted(keys_old - keys_new))


def state_bytes(state: dict) -> bytes:
    return (json.dumps(state, indent=2, sort_keys=True) + "\n").encode()
