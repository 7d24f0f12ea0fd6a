"""Rephrasings of the synthetic data's object descriptions, for text-prompt training.

The synthetic generator (:mod:`sambench.datasets.synth`) describes every object with one
template: "the red disc", "the blue band of the red disc", "the green dot on the blue band".
Training on rephrasings only ("a red disc", "the red disc's blue band", ...) and evaluating on
the generator's own wording measures text-to-mask on phrasings the model never saw. Phrases of
any other form are returned unchanged.
"""
from __future__ import annotations

import re

_WHOLE = re.compile(r"^the (\w+) (\w+)$")
_PART = re.compile(r"^the (\w+) (\w+) of the (\w+) (\w+)$")
_DOT = re.compile(r"^the (\w+) dot on the (\w+) (\w+)$")


def rephrasings(description: str) -> list[str]:
    """Other wordings of a synthetic description (never the description itself), or
    ``[description]`` when it is not one of the generator's templates."""
    m = _PART.match(description)
    if m:
        color, part, owner_color, shape = m.groups()
        return [f"{color} {part} of the {owner_color} {shape}", f"the {owner_color} {shape}'s {color} {part}",
                f"a {color} {part} inside a {owner_color} {shape}", f"{color} {part} in {owner_color} {shape}"]
    m = _DOT.match(description)
    if m:
        color, owner_color, part = m.groups()
        return [f"{color} dot on the {owner_color} {part}", f"the small {color} dot",
                f"a {color} dot inside the {owner_color} {part}", f"the {owner_color} {part}'s {color} dot"]
    m = _WHOLE.match(description)
    if m:
        color, shape = m.groups()
        return [f"a {color} {shape}", f"{color} {shape}", f"the {shape} that is {color}",
                f"the whole {color} {shape}"]
    return [description]
