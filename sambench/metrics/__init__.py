"""Metrics: mask IoU and its aggregates, COCO/LVIS AP/AR, the BSDS edge benchmark."""
