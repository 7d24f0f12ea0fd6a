# Sourced by the training scripts (train_bundled.sh, train_tiny_sam.sh), from the repository
# root once they set `work`: defines PYTHON (the project's .venv, else python3) and `sambench`
# (one thread unless OMP_NUM_THREADS says otherwise, as the shipped runs), writes the synthetic
# training data (300 images per domain, seed 1000) and validation data (20 per domain, seed
# 2000) under $work/data once, and fills the arrays `train` and `val` with the matching
# --dataset / --val-dataset flags. The demo's own data is seed 0, which training never sees.
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
sambench() { OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$PYTHON" -m sambench "$@"; }

train=() val=()
for d in shapes texture cells; do
    [ -f "$work/data/train-$d/annotations.json" ] ||
        sambench datasets synth --out "$work/data/train-$d" --domain "$d" --images 300 --seed 1000
    [ -f "$work/data/val-$d/annotations.json" ] ||
        sambench datasets synth --out "$work/data/val-$d" --domain "$d" --images 20 --seed 2000
    train+=(--dataset "synth-$d=$work/data/train-$d")
    val+=(--val-dataset "synth-$d=$work/data/val-$d")
done
