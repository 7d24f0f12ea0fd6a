"""Training and fine-tuning SAM-layout models with the paper's recipe (App. A)."""
