"""The fidelity report: per source policy, how faithfully it was translated and why.

JSON shape (stable, consumed by verify and by people):
{"policies": [{"source": {"apiVersion", "kind", "namespace", "name"},
               "fidelity": "exact" | "approximate" | "untranslatable",
               "findings": [{"code", "message", "rule"}],
               "outputs": [{"kind", "namespace", "name"}]}]}
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

LEVELS = ("exact", "approximate", "untranslatable")


@dataclass(frozen=True)
class Finding:
    code: str
    message: str
    rule: str | None = None          # e.g. "ingress[2]"; None for the whole policy
    level: str = "approximate"       # what this finding does to the policy's fidelity

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "rule": self.rule}


@dataclass
class PolicyReport:
    api_version: str
    kind: str
    namespace: str | None
    name: str
    findings: list[Finding] = field(default_factory=list)
    outputs: list[tuple[str, str | None, str]] = field(default_factory=list)

    @property
    def fidelity(self) -> str:
        worst = 0
        for f in self.findings:
            worst = max(worst, LEVELS.index(f.level))
        return LEVELS[worst]

    def add(self, f: Finding) -> None:
        if f not in self.findings:
            self.findings.append(f)

    def to_dict(self) -> dict:
        return {"source": {"apiVersion": self.api_version, "kind": self.kind,
                           "namespace": self.namespace, "name": self.name},
                "fidelity": self.fidelity,
                "findings": [f.to_dict() for f in self.findings],
                "outputs": [{"kind": k, "namespace": ns, "name": n}
                            for k, ns, n in sorted(set(self.outputs),
                                                   key=lambda o: (o[0], o[1] or "", o[2]))]}


@dataclass
class FidelityReport:
    policies: list[PolicyReport] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = {lvl: 0 for lvl in LEVELS}
        for p in self.policies:
            out[p.fidelity] += 1
        return out

    def to_dict(self) -> dict:
        ordered = sorted(self.policies, key=lambda p: (p.kind, p.namespace or "", p.name))
        return {"policies": [p.to_dict() for p in ordered]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    def to_markdown(self, max_rows: int | None = None, full: str = "") -> str:
        """The table, worst first; with max_rows, only that many rows (a pull request body
        holds 65,536 characters) and a line saying how many more are in `full`."""
        c = self.counts()
        lines = ["# Policy translation report", "",
                 f"{len(self.policies)} policies: {c['exact']} exact, "
                 f"{c['approximate']} approximate, {c['untranslatable']} untranslatable.", "",
                 "| policy | fidelity | outputs | findings |", "|---|---|---|---|"]
        ordered = sorted(self.policies, key=lambda p: (LEVELS.index(p.fidelity) * -1, p.kind,
                                                       p.namespace or "", p.name))
        rest = ordered[max_rows:] if max_rows is not None else []
        for p in ordered[:max_rows] if max_rows is not None else ordered:
            name = f"{p.kind} {p.namespace}/{p.name}" if p.namespace else f"{p.kind} {p.name}"
            outs = ", ".join(f"{k} {n}" for k, _, n in sorted(set(p.outputs))) or "-"
            finds = "<br>".join(f"`{f.code}`{' ' + f.rule if f.rule else ''}: "
                                f"{f.message.replace('|', '/')}" for f in p.findings) or "-"
            lines.append(f"| {name} | {p.fidelity} | {outs} | {finds} |")
        if rest:
            worse = sum(1 for p in rest if p.fidelity != "exact")
            lines += ["", f"_{len(rest)} more ({worse} not exact) in {full or 'the full report'}_"]
        return "\n".join(lines) + "\n"
