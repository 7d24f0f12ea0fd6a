"""EfficientViT-SAM as one module: its image encoder with SAM v1's prompt encoder and mask decoder.

The prompt path is SAM ViT-B's (``build_efficientvit_sam`` upstream): a 256-wide prompt encoder
for a 1024-px prompt frame and a 64×64 embedding, a two-layer two-way transformer with 8 heads
and a 2048-wide MLP, 3 multimask outputs. One difference from SAM v1 in the decoder: the
reference sets ε = 1e-6 on every norm of the model, the transformer's LayerNorms included
(SAM v1: 1e-5).
"""
from __future__ import annotations

import re

from torch import nn

from sambench.models.efficientvit_sam.encoder import EfficientViTSamConfig, EfficientViTSamEncoder
from sambench.models.sam.mask_decoder import MaskDecoder
from sambench.models.sam.prompt_encoder import PromptEncoder
from sambench.models.sam.transformer import TwoWayTransformer

PROMPT_FRAME = 1024  # prompts, low-res logits and post-processing live in SAM's 1024-px frame
EMBED_DIM = 256
GRID = 64
DECODER_NORM_EPS = 1e-6


class EfficientViTSam(nn.Module):
    """Image encoder, prompt encoder and mask decoder (the reference's state-dict keys)."""

    def __init__(self, config: EfficientViTSamConfig) -> None:
        super().__init__()
        self.config = config
        self.image_encoder = EfficientViTSamEncoder(config)
        self.prompt_encoder = PromptEncoder(embed_dim=EMBED_DIM, image_embedding_size=(GRID, GRID),
                                            input_image_size=(PROMPT_FRAME, PROMPT_FRAME), mask_in_chans=16)
        self.mask_decoder = MaskDecoder(
            transformer_dim=EMBED_DIM,
            transformer=TwoWayTransformer(depth=2, embedding_dim=EMBED_DIM, num_heads=8, mlp_dim=2048,
                                          norm_eps=DECODER_NORM_EPS),
            num_multimask_outputs=3, iou_head_depth=3, iou_head_hidden_dim=256)
        self._released_params = sum(p.numel() for p in self.parameters())

    def num_parameters(self) -> int:
        """Parameters of the released layout (counted before ``prepare_inference`` folds norms)."""
        return self._released_params


# Norms drawn small in random weights (family.py): the last batch norm of each block
# (point_conv, conv2, the attention's proj), so that the residual stream stays O(1).
RESIDUAL_NORMS = re.compile(r"main\.(point_conv|conv2|proj)\.norm\.weight$")

