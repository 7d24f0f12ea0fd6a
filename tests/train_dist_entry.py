"""torchrun entry for the data-parallel training test: a micro SAM trained on the fixture data;
every rank saves its final weights so the test can check they agree."""
import sys
from pathlib import Path

import torch

from sambench.datasets import CocoDataset
from sambench.models.sam.random_checkpoint import make_config
from sambench.models.sam.sam import Sam
from sambench.train.data import load_examples
from sambench.train.loop import TrainConfig, train

MICRO = dict(img_size=64, patch_size=8, embed_dim=32, depth=2, num_heads=2, mlp_dim=64, window_size=4,
             global_attn_indexes=(1,), prompt_embed_dim=32, decoder_mlp_dim=64, iou_head_hidden_dim=32)

data, out = Path(sys.argv[1]), Path(sys.argv[2])
torch.manual_seed(0)
sam = Sam(make_config("tiny", **MICRO))
examples = load_examples([CocoDataset("s", data / "annotations.json", data / "images")], 64)
train(sam, examples, TrainConfig(steps=6, batch_images=1, masks_per_image=3, lr=3e-3, warmup=2,
                                 iterations=2, drop_path=0.1, save_every=100, seed=0), out)
rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
torch.save(sam.state_dict(), out / f"rank{rank}.pt")
