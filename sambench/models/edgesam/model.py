"""EdgeSAM as one module: the RepViT encoder with SAM v1's prompt encoder and mask decoder.

The prompt path is exactly SAM ViT-B's (``_build_sam`` upstream): 256-wide prompt encoder for
the 1024-px frame and a 64×64 embedding, two-layer two-way transformer (8 heads, MLP 2048,
LayerNorm ε 1e-5), 3 multimask outputs; only the image encoder differs from SAM v1.
"""
from __future__ import annotations

import re

from torch import nn

from sambench.models.edgesam.encoder import RepViTConfig, RepViTEncoder
from sambench.models.sam.mask_decoder import MaskDecoder
from sambench.models.sam.prompt_encoder import PromptEncoder
from sambench.models.sam.transformer import TwoWayTransformer

EMBED_DIM = 256


class EdgeSam(nn.Module):
    """Image encoder, prompt encoder and mask decoder (the reference's state-dict keys)."""

    def __init__(self, config: RepViTConfig) -> None:
        super().__init__()
        self.config = config
        self.image_encoder = RepViTEncoder(config)
        size = self.image_encoder.img_size
        self.prompt_encoder = PromptEncoder(embed_dim=EMBED_DIM, image_embedding_size=(size // 16, size // 16),
                                            input_image_size=(size, size), mask_in_chans=16)
        self.mask_decoder = MaskDecoder(
            transformer_dim=EMBED_DIM,
            transformer=TwoWayTransformer(depth=2, embedding_dim=EMBED_DIM, num_heads=8, mlp_dim=2048),
            num_multimask_outputs=3, iou_head_depth=3, iou_head_hidden_dim=256)
        self._released_params = sum(p.numel() for p in self.parameters())

    def num_parameters(self) -> int:
        """Parameters of the released layout (counted before ``prepare_inference`` folds norms)."""
        return self._released_params


# Norms drawn small in random weights (family.py): the channel mixer's last batch norm and the
# RepVGGDW branches, so that the residual stream stays O(1) through the blocks (the reference
# inits the former at zero).
RESIDUAL_NORMS = re.compile(r"(channel_mixer\.m\.2|token_mixer\.0\.conv1?)\.bn\.weight$")

