"""EdgeSAM (Zhou et al., 2023): SAM v1's prompt path on a distilled RepViT CNN encoder."""
