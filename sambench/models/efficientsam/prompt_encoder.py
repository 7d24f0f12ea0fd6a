"""EfficientSAM's prompt encoder: every prompt is a list of labelled points.

A box is two corner points with labels 2 (top-left) and 3 (bottom-right). Each point becomes
the random Fourier features of its position (shifted +0.5 to the pixel centre, normalised by
the square input) plus a learned embedding chosen by its label: 1 positive, 2 / 3 box corners,
−1 padding ("invalid"), and nothing for 0 (a negative click is its position alone). Unlike
SAM v1, a padding point keeps the positional part of its coordinate (−1 → −0.5). There is no
mask prompt and no dense embedding (upstream ``efficient_sam_decoder.py``, ``PromptEncoder``).
"""
from __future__ import annotations

import torch
from torch import nn

from sambench.models.sam.prompt_encoder import PositionEmbeddingRandom

PAD_LABEL = -1
LABEL_EMBEDDINGS = {PAD_LABEL: "invalid_points", 1: "point_embeddings", 2: "bbox_top_left_embeddings",
                    3: "bbox_bottom_right_embeddings"}


class PromptEncoder(nn.Module):
    def __init__(self, embed_dim: int, grid: int, img_size: int) -> None:
        super().__init__()
        self.grid = grid
        self.img_size = img_size
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        for name in LABEL_EMBEDDINGS.values():
            setattr(self, name, nn.Embedding(1, embed_dim))

    def get_dense_pe(self) -> torch.Tensor:
        """``(1, C, g, g)`` positional encoding of the image-embedding grid."""
        return self.pe_layer((self.grid, self.grid)).unsqueeze(0)

    def forward(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``(B, N, 2)`` input-frame coordinates and ``(B, N)`` labels → ``(B, N, C)`` tokens."""
        tokens = self.pe_layer.forward_with_coords(coords + 0.5, (self.img_size, self.img_size))
        for label, name in LABEL_EMBEDDINGS.items():
            tokens = tokens + getattr(self, name).weight * (labels == label)[..., None]
        return tokens
