"""SAM's mask decoder: output tokens + prompt tokens → masks and predicted IoU.

One IoU token and ``num_multimask_outputs + 1`` mask tokens are prepended to the prompt
tokens; after the two-way transformer the image tokens are upscaled 4× (two stride-2
transposed convs) and each mask token's 3-layer MLP output is dotted with every upscaled
pixel. ``multimask`` returns tokens 1..3 (ambiguous prompts), otherwise token 0 (SAM paper
App. A; official ``mask_decoder.py``).

The transposed convs have kernel = stride = 2, so each is a per-pixel matrix product; they are
computed channels-last on the transformer's ``(B, N, C)`` output and the pixel shuffle is
folded into the final ``(B, K, 4h, 4w)`` view, which avoids the layout copies of a conv call.
Only the tokens that are read (the IoU token and the returned mask tokens) leave the
transformer's final attention, and only the K returned mask tokens are upscaled against.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sambench.models.sam.common import LayerNorm2d
from sambench.models.sam.transformer import Image, LowRankImage, TwoWayTransformer, cached


class MaskDecoder(nn.Module):
    def __init__(self, *, transformer_dim: int, transformer: TwoWayTransformer,
                 num_multimask_outputs: int = 3, iou_head_depth: int = 3,
                 iou_head_hidden_dim: int = 256) -> None:
        super().__init__()
        self.transformer_dim = transformer_dim
        self.transformer = transformer
        self.num_multimask_outputs = num_multimask_outputs
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.num_mask_tokens = num_multimask_outputs + 1
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3)
            for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(transformer_dim, iou_head_hidden_dim,
                                       self.num_mask_tokens, iou_head_depth)

    def forward(self, image_embeddings: Tensor, image_pe: Tensor, sparse_prompt_embeddings: Tensor,
                dense_prompt_embeddings: Image, multimask_output: bool,
                cache: Optional[dict] = None) -> tuple[Tensor, Tensor]:
        """Low-res mask logits ``(B, K, 4h, 4w)`` and IoU predictions ``(B, K)``.

        ``image_embeddings`` ``(1, C, h, w)`` (one image), ``image_pe`` ``(1, C, h, w)``,
        ``sparse_prompt_embeddings`` ``(B, T, C)``, ``dense_prompt_embeddings`` ``(1 or B, C, h, w)``
        or mask prompts' :class:`LowRankImage` ``(B, h·w, C)`` (``PromptEncoder(factored=True)``).
        Calls for chunks of one image's prompts, all with or all without mask prompts, may share
        a ``cache`` dict: the image-side work that does not depend on the prompts is then done
        once.
        """
        tokens_out = slice(1, None) if multimask_output else slice(0, 1)
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        token_ids = range(self.num_mask_tokens)[tokens_out]
        n_out = 2 + token_ids[-1]  # the IoU token and mask tokens up to the last one returned
        hs, src = self.run_transformer(image_embeddings, image_pe, output_tokens, sparse_prompt_embeddings,
                                       dense_prompt_embeddings, cache, n_out)
        iou_pred = self.iou_prediction_head(hs[:, 0, :])[:, tokens_out]
        hyper_in = torch.stack([self.output_hypernetworks_mlps[i](hs[:, 1 + i, :])
                                for i in token_ids], dim=1)
        masks = self._upscale_dot(src, hyper_in, *image_embeddings.shape[-2:])
        return masks, iou_pred

    def run_transformer(self, image_embeddings: Tensor, image_pe: Tensor, output_tokens: Tensor,
                        sparse_prompt_embeddings: Tensor, dense_prompt_embeddings: Image,
                        cache: Optional[dict], n_out: int) -> tuple[Tensor, Tensor]:
        """The two-way transformer on ``output_tokens`` ``(T, C)`` + each prompt's tokens:
        the first ``n_out`` tokens ``(B, n_out, C)`` and the image tokens ``(B, h·w, C)``."""
        batch = sparse_prompt_embeddings.shape[0]
        tokens = torch.cat([output_tokens.unsqueeze(0).expand(batch, -1, -1),
                            sparse_prompt_embeddings.to(output_tokens.dtype)], dim=1)

        def image_tokens():  # (1, h·w, C) without mask prompts: shared by every prompt
            # With channels-last inputs (mask embeddings come so) the sum is already in token
            # order and the transpose is a view.
            src = image_embeddings + dense_prompt_embeddings
            return src.flatten(2).transpose(1, 2).contiguous()

        pos = cached(cache, "image pe", lambda: image_pe.flatten(2).transpose(1, 2).contiguous())
        if isinstance(dense_prompt_embeddings, LowRankImage):  # mask prompts, kept factored
            factored = dense_prompt_embeddings
            shared = cached(cache, "image tokens + mask bias",
                            lambda: image_embeddings.flatten(2).transpose(1, 2).contiguous() + factored.shared)
            image = LowRankImage(shared, factored.features, factored.weight)
            hs, src = self.transformer(image, pos, tokens, cache, n_out)
        elif dense_prompt_embeddings.shape[0] == 1:
            hs, src = self.transformer(cached(cache, "image tokens", image_tokens), pos, tokens, cache, n_out)
        else:  # mask prompts: every prompt has its own image tokens; only the PE is shared
            hs, src = self.transformer(image_tokens(), pos, tokens, n_out=n_out)
        return hs, src.expand(batch, -1, -1)

    def _upscale_dot(self, src: Tensor, hyper_in: Tensor, height: int, width: int,
                     skips: Optional[tuple[Tensor, Tensor]] = None) -> Tensor:
        """``output_upscaling`` on channels-last ``src`` ``(B, h·w, C)`` (with ``skips``, see
        :meth:`upscale_rows`), dotted with ``hyper_in``."""
        x = self.upscale_rows(src, skips)
        batch, c2 = src.shape[0], self.output_upscaling[3].out_channels
        # x rows: (b, i, j, di, dj); columns: (ei, ej, c2) → pixel (4i+2di+ei, 4j+2dj+ej)
        masks = x.view(batch, -1, c2) @ hyper_in.transpose(1, 2)
        k = hyper_in.shape[1]
        masks = masks.view(batch, height, width, 2, 2, 2, 2, k).permute(0, 7, 1, 3, 5, 2, 4, 6)
        return masks.reshape(batch, k, 4 * height, 4 * width)

    def upscale(self, src: Tensor, height: int, width: int) -> Tensor:
        """``output_upscaling`` of channels-last ``src`` ``(B, h·w, C)`` as ``(B, C/8, 4h, 4w)``."""
        x = self.upscale_rows(src)
        batch, c2 = src.shape[0], self.output_upscaling[3].out_channels
        x = x.view(batch, height, width, 2, 2, 2, 2, c2).permute(0, 7, 1, 3, 5, 2, 4, 6)
        return x.reshape(batch, c2, 4 * height, 4 * width)

    def upscale_rows(self, src: Tensor, skips: Optional[tuple[Tensor, Tensor]] = None) -> Tensor:
        """``output_upscaling`` as per-pixel products: rows (b, i, j, di, dj), columns (ei, ej, c2).

        ``skips`` (SAM 2's high-resolution features) are added to the output of each transposed
        conv before its norm / activation, laid out as its rows: ``(h·w, 4·c1)`` and
        ``(4·h·w, 4·c2)`` (see ``sam2.mask_decoder.skip_rows``), shared by all prompts.
        """
        up1, norm, act1, up2, act2 = self.output_upscaling
        batch = src.shape[0]
        c1, c2 = up1.out_channels, up2.out_channels
        # ConvTranspose2d(k=2, s=2): output pixel (2i+di, 2j+dj) = W[:, :, di, dj]ᵀ x[i, j] + b
        w1 = up1.weight.permute(0, 2, 3, 1).reshape(up1.in_channels, 4 * c1)
        x = torch.addmm(up1.bias.repeat(4), src.reshape(-1, src.shape[-1]), w1)
        if skips is not None:
            x = (x.view(batch, -1, 4 * c1) + skips[0].to(x.dtype)).view(-1, 4 * c1)
        x = F.layer_norm(x.view(-1, c1), (c1,), norm.weight, norm.bias, norm.eps)
        x = act1(x)
        w2 = up2.weight.permute(0, 2, 3, 1).reshape(c1, 4 * c2)
        x = torch.addmm(up2.bias.repeat(4), x, w2)
        if skips is not None:
            x = (x.view(batch, -1, 4 * c2) + skips[1].to(x.dtype)).view(-1, 4 * c2)
        return act2(x)


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU between them (MaskFormer-style head)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        self.num_layers = num_layers
        dims = [input_dim] + [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < self.num_layers - 1:
                x = F.relu(x)
        return x
