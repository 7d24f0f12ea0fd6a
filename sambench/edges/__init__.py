"""Edge maps for the BSDS edge task: from a promptable model's masks (``masks``, SAM §7.2) and
Dollár's edge NMS (``nms``). Scoring them is :mod:`sambench.metrics.bsds`."""
