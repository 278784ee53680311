"""User-facing errors.

Anything the user can fix (bad YAML, an invalid selector, an overlapping CIDR, a dirty output
repository...) is raised as a UserError. The CLI prints it as one line and exits 2, with no
traceback unless --debug is given. Everything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class UserError(Exception):
    """An error in the user's input or environment: printed as one line, exit code 2.

    file: the file (or source such as a kube context) the problem came from.
    obj:  the object, e.g. "GlobalNetworkPolicy default.allow-dns" (kind, namespace/name).
    field: a dotted path inside the object, e.g. "spec.ingress[2].source.selector".
    """

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, obj: str | None = None,
                 field: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.obj = obj
        self.field = field

    def one_line(self) -> str:
        where = [p for p in (self.file, self.obj, self.field) if p]
        text = " ".join(self.message.split())  # always a single line
        return f"{': '.join(where)}: {text}" if where else text

    def __str__(self) -> str:
        return self.one_line()


def object_name(obj: dict) -> str:
    """'Kind namespace/name' or 'Kind name' for messages."""
    if not isinstance(obj, dict):
        return "<not a mapping>"
    meta = obj.get("metadata") or {}
    kind = obj.get("kind", "<no kind>")
    name = meta.get("name", "<no name>") if isinstance(meta, dict) else "<no name>"
    ns = meta.get("namespace") if isinstance(meta, dict) else None
    return f"{kind} {ns}/{name}" if ns else f"{kind} {name}"
