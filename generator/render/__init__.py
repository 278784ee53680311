"""Render a Plan as one full repository tree per wave (see tree.py).

    render(plan, inventory, translation=None, *, inputs=None, values=None) -> list[Commit]

Lazy, so importing generator.render.model (as generator.jobs does) stays cheap and acyclic."""


def __getattr__(name):
    if name in ("render", "WaveInput"):
        from . import tree
        return getattr(tree, name)
    raise AttributeError(name)


__all__ = ["render", "WaveInput"]
