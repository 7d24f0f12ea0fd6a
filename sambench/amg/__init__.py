"""Automatic mask generation (SAM's data engine, paper App. B), SA-1B export and helpers.

``AutomaticMaskGenerator(model, ...)`` has the official ``SamAutomaticMaskGenerator``'s
parameters and output for any model of the protocol (``generator``); its pieces are in
``utils`` and ``nms``; ``sambench amg`` writes the masks as SA-1B JSON (``cli``, ``export``;
docs/amg.md).
"""
from sambench.amg.generator import AutomaticMaskGenerator

__all__ = ["AutomaticMaskGenerator"]
