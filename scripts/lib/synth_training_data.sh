# Sourced by the training scripts (train_bundled.sh, train_tiny_sam.sh), after they define
# `sambench` and `work`: writes the synthetic training data (300 images per domain, seed 1000)
# and validation data (20 per domain, seed 2000) under $work/data once, and fills the arrays
# `train` and `val` with the matching --dataset / --val-dataset flags. The demo's own data is
# seed 0, which training never sees.
train=() val=()
for d in shapes texture cells; do
    [ -f "$work/data/train-$d/annotations.json" ] ||
        sambench datasets synth --out "$work/data/train-$d" --domain "$d" --images 300 --seed 1000
    [ -f "$work/data/val-$d/annotations.json" ] ||
        sambench datasets synth --out "$work/data/val-$d" --domain "$d" --images 20 --seed 2000
    train+=(--dataset "synth-$d=$work/data/train-$d")
    val+=(--val-dataset "synth-$d=$work/data/val-$d")
done
