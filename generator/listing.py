"""Lists of names in PR descriptions: a pull request body holds 65,536 characters (GitHub), and a
5,000-node cluster has lists of thousands. Long lists name the first LIMIT and count the rest;
the full lists are in the wave's files."""
from __future__ import annotations

LIMIT = 50


def some(items, fmt=str, where: str = "", limit: int = LIMIT) -> str:
    """'a, b, c' or 'a, b, ... and 1196 more (where)'."""
    items = list(items)
    text = ", ".join(fmt(x) for x in items[:limit])
    if len(items) > limit:
        text += f" and {len(items) - limit} more" + (f" ({where})" if where else "")
    return text
