"""SAM 3's image model built from the ``sam3`` package's own classes, at any size.

The package's ``build_sam3_image_model`` fixes every size and, on a machine without CUDA,
fails: ``PositionEmbeddingSine(precompute_resolution=...)`` and ``TransformerDecoder(
resolution=..., stride=...)`` fill their caches with ``device="cuda"`` when built (upstream
issues #587 and #550). This module wires the same classes with the same arguments, sizes taken
from a :class:`Sam3Config` (the released model's by default), and builds those two caches
lazily instead (``precompute_resolution=None``, ``resolution=None``): the caches hold the same
values either way, computed on first use on the model's device. ``tests/test_sam3.py`` checks
that the package still fails on CPU, so the day upstream fixes it this wiring can go.

The image path needs the detector (vision + text backbone, DETR encoder / decoder, geometry
encoder, segmentation head, scoring) and the tracker's SAM heads (the interactive predictor);
the tracker's memory modules are built too, because the released checkpoint carries them, and
are never run on images.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from sambench.errors import SambenchError


@dataclass(frozen=True)
class Sam3Config:
    """The sizes that differ between the released model and a reduced test model."""

    vit_embed_dim: int = 1024
    vit_depth: int = 32
    vit_heads: int = 16
    vit_mlp_ratio: float = 4.625
    vit_global_blocks: tuple[int, ...] = (7, 15, 23, 31)
    text_width: int = 1024
    text_heads: int = 16
    text_layers: int = 24
    detr_layers: int = 6
    feedforward: int = 2048
    num_queries: int = 200
    geometry_layers: int = 3
    tracker_layers: int = 4
    fuser_layers: int = 2

    def to_json(self) -> dict:
        out = asdict(self)
        out["vit_global_blocks"] = list(self.vit_global_blocks)
        return out

    @classmethod
    def from_json(cls, data: dict) -> "Sam3Config":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise SambenchError(f"sam3 config: unknown keys {sorted(unknown)}")
        values = dict(data)
        if "vit_global_blocks" in values:
            values["vit_global_blocks"] = tuple(int(v) for v in values["vit_global_blocks"])
        try:
            return cls(**values)
        except TypeError as exc:
            raise SambenchError(f"sam3 config: {exc}") from None


D_MODEL = 256  # fixed throughout the released architecture
IMAGE_SIZE = 1008
PATCH = 14


def _position_encoding(num_pos_feats: int = D_MODEL):
    from sam3.model.position_encoding import PositionEmbeddingSine

    return PositionEmbeddingSine(num_pos_feats=num_pos_feats, normalize=True, scale=None, temperature=10000,
                                 precompute_resolution=None)


def _attention(batch_first: bool = True, dropout: float = 0.1):
    from sam3.model.model_misc import MultiheadAttentionWrapper

    return MultiheadAttentionWrapper(num_heads=8, dropout=dropout, embed_dim=D_MODEL, batch_first=batch_first)


def _encoder_layer(cfg: Sam3Config, **kwargs):
    from sam3.model.encoder import TransformerEncoderLayer

    return TransformerEncoderLayer(activation="relu", d_model=D_MODEL, dim_feedforward=cfg.feedforward,
                                   dropout=0.1, pre_norm=True, **kwargs)


def _backbone(cfg: Sam3Config, bpe_path: str):
    from sam3.model.necks import Sam3DualViTDetNeck
    from sam3.model.text_encoder_ve import VETextEncoder
    from sam3.model.tokenizer_ve import SimpleTokenizer
    from sam3.model.vitdet import ViT
    from sam3.model.vl_combiner import SAM3VLBackbone

    vit = ViT(img_size=IMAGE_SIZE, pretrain_img_size=336, patch_size=PATCH, embed_dim=cfg.vit_embed_dim,
              depth=cfg.vit_depth, num_heads=cfg.vit_heads, mlp_ratio=cfg.vit_mlp_ratio, norm_layer="LayerNorm",
              drop_path_rate=0.1, qkv_bias=True, use_abs_pos=True, tile_abs_pos=True,
              global_att_blocks=cfg.vit_global_blocks, rel_pos_blocks=(), use_rope=True, use_interp_rope=True,
              window_size=24, pretrain_use_cls_token=True, retain_cls_token=False, ln_pre=True, ln_post=False,
              return_interm_layers=False, bias_patch_embed=False)
    neck = Sam3DualViTDetNeck(position_encoding=_position_encoding(), d_model=D_MODEL,
                              scale_factors=[4.0, 2.0, 1.0, 0.5], trunk=vit, add_sam2_neck=True)
    text = VETextEncoder(tokenizer=SimpleTokenizer(bpe_path=bpe_path), d_model=D_MODEL, width=cfg.text_width,
                         heads=cfg.text_heads, layers=cfg.text_layers)
    return SAM3VLBackbone(visual=neck, text=text, scalp=1)


def _transformer(cfg: Sam3Config):
    from sam3.model.decoder import TransformerDecoder, TransformerDecoderLayer
    from sam3.model.encoder import TransformerEncoderFusion
    from sam3.model.model_misc import MultiheadAttentionWrapper, TransformerWrapper

    encoder = TransformerEncoderFusion(
        layer=_encoder_layer(cfg, pos_enc_at_attn=True, pos_enc_at_cross_attn_keys=False,
                             pos_enc_at_cross_attn_queries=False, self_attention=_attention(),
                             cross_attention=_attention()),
        num_layers=cfg.detr_layers, d_model=D_MODEL, num_feature_levels=1, frozen=False, use_act_checkpoint=True,
        add_pooled_text_to_img_feat=False, pool_text_with_mask=True)
    decoder = TransformerDecoder(
        layer=TransformerDecoderLayer(activation="relu", d_model=D_MODEL, dim_feedforward=cfg.feedforward,
                                      dropout=0.1, cross_attention=MultiheadAttentionWrapper(
                                          num_heads=8, dropout=0.1, embed_dim=D_MODEL),
                                      n_heads=8, use_text_cross_attention=True),
        num_layers=cfg.detr_layers, num_queries=cfg.num_queries, return_intermediate=True, box_refine=True,
        num_o2m_queries=0, dac=True, boxRPB="log", d_model=D_MODEL, frozen=False, interaction_layer=None,
        dac_use_selfatt_ln=True, resolution=None, stride=None, use_act_checkpoint=True, presence_token=True)
    return TransformerWrapper(encoder=encoder, decoder=decoder, d_model=D_MODEL)


def _heads(cfg: Sam3Config):
    from torch import nn

    from sam3.model.geometry_encoders import SequenceGeometryEncoder
    from sam3.model.maskformer_segmentation import PixelDecoder, UniversalSegmentationHead
    from sam3.model.model_misc import MLP, DotProductScoring, MultiheadAttentionWrapper

    scoring = DotProductScoring(d_model=D_MODEL, d_proj=D_MODEL, prompt_mlp=MLP(
        input_dim=D_MODEL, hidden_dim=cfg.feedforward, output_dim=D_MODEL, num_layers=2, dropout=0.1,
        residual=True, out_norm=nn.LayerNorm(D_MODEL)))
    segmentation = UniversalSegmentationHead(
        hidden_dim=D_MODEL, upsampling_stages=3, aux_masks=False, presence_head=False, dot_product_scorer=None,
        act_ckpt=True, cross_attend_prompt=MultiheadAttentionWrapper(num_heads=8, dropout=0, embed_dim=D_MODEL),
        pixel_decoder=PixelDecoder(num_upsampling_stages=3, interpolation_mode="nearest", hidden_dim=D_MODEL))
    geometry = SequenceGeometryEncoder(
        pos_enc=_position_encoding(), encode_boxes_as_points=False, points_direct_project=True, points_pool=True,
        points_pos_enc=True, boxes_direct_project=True, boxes_pool=True, boxes_pos_enc=True, d_model=D_MODEL,
        num_layers=cfg.geometry_layers,
        layer=_encoder_layer(cfg, pos_enc_at_attn=False, self_attention=_attention(batch_first=False),
                             pos_enc_at_cross_attn_queries=False, pos_enc_at_cross_attn_keys=True,
                             cross_attention=_attention(batch_first=False)),
        use_act_ckpt=True, add_cls=True, add_post_encode_proj=True)
    return scoring, segmentation, geometry


def _tracker(cfg: Sam3Config):
    """The tracker of ``build_tracker(apply_temporal_disambiguation=False)``, without a backbone."""
    from sam3.model.decoder import TransformerDecoderLayerv2, TransformerEncoderCrossAttention
    from sam3.model.memory import CXBlock, SimpleFuser, SimpleMaskDownSampler, SimpleMaskEncoder
    from sam3.model.model_misc import TransformerWrapper
    from sam3.model.sam3_tracking_predictor import Sam3TrackerPredictor
    from sam3.sam.transformer import RoPEAttention

    def rope(**kwargs):
        return RoPEAttention(embedding_dim=D_MODEL, num_heads=1, downsample_rate=1, dropout=0.1, rope_theta=10000.0,
                             feat_sizes=[72, 72], use_fa3=False, use_rope_real=False, **kwargs)

    cx = CXBlock(dim=D_MODEL, kernel_size=7, padding=3, layer_scale_init_value=1.0e-06, use_dwconv=True)
    maskmem = SimpleMaskEncoder(
        out_dim=64, position_encoding=_position_encoding(64),
        mask_downsampler=SimpleMaskDownSampler(kernel_size=3, stride=2, padding=1, interpol_size=[1152, 1152]),
        fuser=SimpleFuser(layer=cx, num_layers=cfg.fuser_layers))
    layer = TransformerDecoderLayerv2(
        cross_attention_first=False, activation="relu", dim_feedforward=cfg.feedforward, dropout=0.1,
        pos_enc_at_attn=False, pre_norm=True, self_attention=rope(), d_model=D_MODEL,
        pos_enc_at_cross_attn_keys=True, pos_enc_at_cross_attn_queries=False,
        cross_attention=rope(kv_in_dim=64, rope_k_repeat=True))
    encoder = TransformerEncoderCrossAttention(remove_cross_attention_layers=[], batch_first=True, d_model=D_MODEL,
                                               frozen=False, pos_enc_at_input=True, layer=layer,
                                               num_layers=cfg.tracker_layers, use_act_checkpoint=False)
    return Sam3TrackerPredictor(
        image_size=IMAGE_SIZE, num_maskmem=7, backbone=None, backbone_stride=PATCH,
        transformer=TransformerWrapper(encoder=encoder, decoder=None, d_model=D_MODEL), maskmem_backbone=maskmem,
        multimask_output_in_sam=True, forward_backbone_per_frame_for_eval=True, trim_past_non_cond_mem_for_eval=False,
        multimask_output_for_tracking=True, multimask_min_pt_num=0, multimask_max_pt_num=1,
        always_start_from_first_ann_frame=False, non_overlap_masks_for_mem_enc=False,
        non_overlap_masks_for_output=False, max_cond_frames_in_attn=4, offload_output_to_cpu_for_eval=False,
        sam_mask_decoder_extra_args={"dynamic_multimask_via_stability": True,
                                     "dynamic_multimask_stability_delta": 0.05,
                                     "dynamic_multimask_stability_thresh": 0.98},
        clear_non_cond_mem_around_input=True, fill_hole_area=0, use_memory_selection=False)


def build_sam3(cfg: Sam3Config, bpe_path: str, max_hole_area: float = 256.0):
    """The ``Sam3Image`` model with its interactive predictor, in eval mode, random weights."""
    from sam3.model.sam1_task_predictor import SAM3InteractiveImagePredictor
    from sam3.model.sam3_image import Sam3Image

    scoring, segmentation, geometry = _heads(cfg)
    model = Sam3Image(backbone=_backbone(cfg, bpe_path), transformer=_transformer(cfg),
                      input_geometry_encoder=geometry, segmentation_head=segmentation, num_feature_levels=1,
                      o2m_mask_predict=True, dot_prod_scoring=scoring, use_instance_query=False,
                      multimask_output=True,
                      inst_interactive_predictor=SAM3InteractiveImagePredictor(_tracker(cfg),
                                                                               max_hole_area=max_hole_area),
                      matcher=None)
    return model.eval()


__all__ = ["Sam3Config", "build_sam3", "IMAGE_SIZE", "D_MODEL"]
