"""cni-migrate: plan a live CNI migration to Cilium as a series of GitOps commits.

Pipeline (pure stages, I/O only at the edges):
    inventory -> plan -> translate -> render -> emit (git), plus verify.
"""

__version__ = "0.1.0"
