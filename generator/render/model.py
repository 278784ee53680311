"""What rendering produces: one full file tree per wave, plus its commit text and PR text."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..plan.model import Wave

# Order of objects inside one wave (Argo CD sync-wave offsets / Flux Kustomization chain):
STEP_SETUP = 0    # Namespaces, ServiceAccounts, RBAC, ConfigMaps holding scripts
STEP_CHANGE = 1   # the change itself: values, CiliumNodeConfig, Node labels, policies
STEP_WORK = 2     # Jobs that do imperative work (per-node migration runner)
STEP_GATE = 3     # validation Jobs: the wave is done when these complete


@dataclass
class Item:
    """One Kubernetes object placed in a wave."""
    obj: dict
    step: int = STEP_CHANGE
    filename: str | None = None     # file inside the wave directory; default from kind/name


@dataclass
class Commit:
    wave: Wave
    subject: str                    # "wave NN: <title>"
    body: str                       # what changes, gates, risk, rollback
    tree: dict[str, bytes]          # the WHOLE repository tree after this wave: path -> content
    pr_description: str             # Markdown, also written to the tree as pr/wave-NN.md
    extra_branches: dict[str, dict[str, bytes]] = field(default_factory=dict)  # e.g. rollback
