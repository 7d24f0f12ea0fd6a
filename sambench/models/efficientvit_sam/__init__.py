"""EfficientViT-SAM (Zhang et al., 2024): SAM v1's prompt path on an EfficientViT image encoder."""
