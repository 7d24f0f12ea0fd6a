"""SAM's prompt encoder: points and boxes → sparse tokens, a mask → a dense embedding.

Points and box corners are encoded with random Fourier features of their position (shifted
+0.5 to the pixel centre, normalised by the padded input size) plus a learned embedding per
kind: negative point (0), positive point (1), box top-left (2), box bottom-right (3), and
"not a point" (label −1) that replaces the positional part of padding points. A mask prompt
(4× the embedding resolution) is downscaled by two stride-2 convs; without one, the learned
``no_mask_embed`` is used everywhere (SAM paper App. A; official ``prompt_encoder.py``).

Optional text path (not in SAM v1; SAM paper §7.5 used one for its text-to-mask proof of
concept): with ``text_dim > 0``, ``text_proj`` (one ``nn.Linear(text_dim, embed_dim)``, keys
``prompt_encoder.text_proj.weight/bias``) turns an ℓ2-normalised text embedding into one extra
sparse token, appended after the point/box tokens. Its bias is the token's learned "kind"
embedding, like ``point_embeddings`` for points. Without the module, state-dict keys and
outputs are exactly the official ones.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from sambench.models.sam.common import LayerNorm2d
from sambench.models.sam.transformer import LowRankImage


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features: ``sin``/``cos`` of ``2π (2p − 1) G`` for p in [0, 1]²."""

    def __init__(self, num_pos_feats: int = 128, scale: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix",
                             scale * torch.randn((2, num_pos_feats)))

    def _pe_encoding(self, coords: torch.Tensor) -> torch.Tensor:
        coords = 2 * coords - 1
        coords = coords @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def forward(self, size: tuple[int, int]) -> torch.Tensor:
        """``(C, h, w)`` encoding of the centres of an ``h × w`` grid."""
        height, width = size
        device = self.positional_encoding_gaussian_matrix.device
        ones = torch.ones((height, width), device=device, dtype=torch.float32)
        y = (ones.cumsum(dim=0) - 0.5) / height
        x = (ones.cumsum(dim=1) - 0.5) / width
        return self._pe_encoding(torch.stack([x, y], dim=-1)).permute(2, 0, 1)

    def forward_with_coords(self, coords: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """Encode ``(B, N, 2)`` pixel coordinates ``(x, y)`` of an ``image_size`` (H, W) frame."""
        x = coords[..., 0] / image_size[1]
        y = coords[..., 1] / image_size[0]
        return self._pe_encoding(torch.stack([x, y], dim=-1).to(torch.float))


class PromptEncoder(nn.Module):
    def __init__(self, embed_dim: int, image_embedding_size: tuple[int, int],
                 input_image_size: tuple[int, int], mask_in_chans: int, text_dim: int = 0) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.input_image_size = input_image_size
        self.image_embedding_size = image_embedding_size
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        # 0 negative point, 1 positive point, 2 box top-left, 3 box bottom-right
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_input_size = (4 * image_embedding_size[0], 4 * image_embedding_size[1])
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)
        self.text_dim = text_dim
        if text_dim > 0:
            self.text_proj = nn.Linear(text_dim, embed_dim)

    def get_dense_pe(self) -> torch.Tensor:
        """``(1, C, h, w)`` positional encoding of the image-embedding grid."""
        return self.pe_layer(self.image_embedding_size).unsqueeze(0)

    def _embed_points(self, points: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        points = points + 0.5  # pixel centre
        if pad:
            # Without a box the decoder was trained with one trailing "not a point" token.
            points = torch.cat([points, points.new_zeros(points.shape[0], 1, 2)], dim=1)
            labels = torch.cat([labels, -labels.new_ones(labels.shape[0], 1)], dim=1)
        embedding = self.pe_layer.forward_with_coords(points, self.input_image_size)
        labels = labels[..., None]
        embedding = torch.where(labels == -1, self.not_a_point_embed.weight, embedding)
        embedding = torch.where(labels == 0, embedding + self.point_embeddings[0].weight, embedding)
        return torch.where(labels == 1, embedding + self.point_embeddings[1].weight, embedding)

    def _embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        corners = (boxes + 0.5).reshape(-1, 2, 2)  # pixel centre
        embedding = self.pe_layer.forward_with_coords(corners, self.input_image_size)
        corner_kind = torch.cat([self.point_embeddings[2].weight, self.point_embeddings[3].weight])
        return embedding + corner_kind

    def _embed_text(self, text: torch.Tensor) -> torch.Tensor:
        if self.text_dim <= 0:
            raise ValueError("this prompt encoder has no text path (text_dim = 0)")
        if text.ndim != 2 or text.shape[1] != self.text_dim:
            raise ValueError(f"text must be (B, {self.text_dim}); got {tuple(text.shape)}")
        return self.text_proj(text.to(self.text_proj.weight.dtype))[:, None, :]

    def _downscale_masks(self, masks: torch.Tensor, factored: bool = False):
        """``mask_downscaling`` computed channels-last: ``(B, 1, 4h, 4w)`` → ``(B, C, h, w)``
        with channels-last strides, or with ``factored`` a :class:`LowRankImage` in token order
        ``(B, h·w, C)`` that keeps the last 1×1 conv's 16-channel input and weight apart.

        The same maths as the module (a kernel-2 stride-2 conv is a matrix product on 2×2
        patches, LayerNorm2d is a LayerNorm over channels) without its NCHW round trips; the
        result's memory is already in the decoder's token order, so adding the image
        embedding needs no transpose.
        """
        conv1, norm1, act1, conv2, norm2, act2, conv3 = self.mask_downscaling
        batch, _, height, width = masks.shape
        c1, c2 = conv1.out_channels, conv2.out_channels
        x = masks.reshape(batch, height // 2, 2, width // 2, 2).permute(0, 1, 3, 2, 4)
        x = F.linear(x.reshape(batch, height // 2, width // 2, 4), conv1.weight.reshape(c1, 4), conv1.bias)
        x = act1(F.layer_norm(x, (c1,), norm1.weight, norm1.bias, norm1.eps))
        x = x.reshape(batch, height // 4, 2, width // 4, 2, c1).permute(0, 1, 3, 2, 4, 5)
        x = F.linear(x.reshape(batch, height // 4, width // 4, 4 * c1),
                     conv2.weight.permute(0, 2, 3, 1).reshape(c2, 4 * c1), conv2.bias)
        x = act2(F.layer_norm(x, (c2,), norm2.weight, norm2.bias, norm2.eps))
        weight = conv3.weight.reshape(conv3.out_channels, c2)
        if factored:
            return LowRankImage(conv3.bias.view(1, 1, -1), x.reshape(batch, -1, c2), weight)
        return F.linear(x, weight, conv3.bias).permute(0, 3, 1, 2)

    def forward(self, points: Optional[tuple[torch.Tensor, torch.Tensor]],
                boxes: Optional[torch.Tensor], masks: Optional[torch.Tensor],
                text: Optional[torch.Tensor] = None, factored: bool = False):
        """Sparse ``(B, T, C)`` tokens and the dense ``(B, C, h, w)`` mask embedding.

        ``text`` ``(B, text_dim)`` adds one token per prompt (needs the text path). Without
        masks the dense embedding is ``(1, C, h, w)``: the same for every prompt, so the decoder
        can share it instead of repeating it B times. With masks and ``factored``, it is a
        :class:`LowRankImage` (see ``_downscale_masks``), which the decoder's first layer uses
        without forming it.
        """
        if points is not None:
            batch = points[0].shape[0]
        elif boxes is not None:
            batch = boxes.shape[0]
        elif text is not None:
            batch = text.shape[0]
        elif masks is not None:
            batch = masks.shape[0]
        else:
            batch = 1
        device = self.no_mask_embed.weight.device
        sparse = [torch.empty((batch, 0, self.embed_dim), device=device)]
        if points is not None:
            sparse.append(self._embed_points(points[0], points[1], pad=boxes is None))
        if boxes is not None:
            sparse.append(self._embed_boxes(boxes))
        if text is not None:
            sparse.append(self._embed_text(text))
        if masks is not None:
            dense = self._downscale_masks(masks, factored)
        else:
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(
                1, -1, *self.image_embedding_size)
        return torch.cat(sparse, dim=1), dense
