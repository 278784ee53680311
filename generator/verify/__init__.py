"""Proof that a translation keeps every verdict: universes, flow classes, comparison, probes,
and the per-wave enforcement gap. Public: verify(policy_set, cilium_objects, *, inventory=None,
declared=None) -> VerifyResult (generator/verify/compare.py)."""


def __getattr__(name):
    # lazy: generator.cilium.evaluator imports verify.model, and compare imports the evaluator
    if name in ("verify", "VerifyResult", "Difference"):
        from . import compare
        return getattr(compare, name)
    raise AttributeError(name)
