"""Paired comparison of two runs on identical prompts (same masks, same seed).

Two models prompted with the same first point on the same masks give paired IoUs, so the
difference is measured per mask: a paired percentile cluster bootstrap over *images* (the masks
of an image resampled together, since they share its content) for the 95% CI of the mean
difference (stratified by dataset for the mean over datasets) and a two-sided sign test over
masks (``scipy.stats.binomtest``, ties dropped). Unpaired CIs of two means would be far wider
and would miss that most of the variance is the masks', not the models'.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import binomtest

from sambench.errors import SambenchError
from sambench.metrics.iou import BOOTSTRAP_RESAMPLES, CI_METHOD, cluster_sums
from sambench.report.records import point_frame, point_values
from sambench.results import load_results, scored

TIE = 1e-9


def _point_entries(results: dict, run_dir: Path, task: str) -> dict[str, dict]:
    entries = {e["dataset"]: e for e in results["results"] if e["task"] == task and scored(e)}
    if not entries:
        raise SambenchError(f"{run_dir}: no scored {task}-task datasets to compare")
    return entries


def run_label(results: dict, run_dir: Path) -> str:
    model = results["model"]
    ckpt = Path(str(model["checkpoint"])).name if model.get("checkpoint") else ""
    return f"{model['name']}{':' + ckpt if ckpt else ''} ({Path(run_dir).name})"


def compare_runs(run_a: Path, run_b: Path, metric: str = "miou@1", task: str = "point",
                 resamples: int = BOOTSTRAP_RESAMPLES) -> dict:
    """Per-dataset paired difference A − B of a point metric, as a JSON-ready dict.

    Refuses (SambenchError) when the runs cannot be paired: other datasets, task versions,
    masks, or (for random first points) seeds.
    """
    res_a, res_b = load_results(run_a), load_results(run_b)
    ent_a, ent_b = _point_entries(res_a, run_a, task), _point_entries(res_b, run_b, task)
    if set(ent_a) != set(ent_b):
        only_a, only_b = sorted(set(ent_a) - set(ent_b)), sorted(set(ent_b) - set(ent_a))
        raise SambenchError(f"the runs scored different datasets (only in {run_a}: {only_a or '-'}; "
                            f"only in {run_b}: {only_b or '-'}); a paired comparison needs the same masks")
    seed_a, seed_b = res_a["run"].get("seed"), res_b["run"].get("seed")
    if metric.startswith("random_") and seed_a != seed_b:
        raise SambenchError(f"{metric}: random first points depend on the seed and the runs used "
                            f"seeds {seed_a} and {seed_b}; rerun one with --seed {seed_a}")
    rng = np.random.default_rng(int(seed_a or 0))
    datasets, boot_means = [], []
    for name in ent_a:  # run A's order (the suite's)
        if ent_a[name]["task_version"] != ent_b[name]["task_version"]:
            raise SambenchError(f"{name}: point task version {ent_a[name]['task_version']} vs "
                                f"{ent_b[name]['task_version']}; the protocols differ")
        a = point_values(point_frame(run_a, name, task), metric, ent_a[name].get("protocol") or {})
        b = point_values(point_frame(run_b, name, task), metric, ent_b[name].get("protocol") or {})
        if a.empty or b.empty:
            raise SambenchError(f"{name}: no per-mask values for {metric} in "
                                f"{run_a if a.empty else run_b}")
        if not a.index.equals(b.index):
            only = len(a.index.symmetric_difference(b.index))
            raise SambenchError(f"{name}: the runs scored different masks ({len(a)} vs {len(b)}, {only} "
                                "in only one); a paired comparison needs identical masks")
        d = a.to_numpy() - b.to_numpy()
        sums, counts = cluster_sums(d, a.index.get_level_values("sample"))
        idx = rng.integers(0, len(sums), size=(resamples, len(sums)))
        means = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
        boot_means.append(means)
        wins, losses = int((d > TIE).sum()), int((d < -TIE).sum())
        datasets.append({"dataset": name, "n_masks": len(d), "a": float(a.mean()), "b": float(b.mean()),
                         "delta": float(d.mean()), "delta_ci95": _percentiles(means),
                         "wins": wins, "losses": losses, "ties": len(d) - wins - losses,
                         "p_sign": _sign_p(wins, losses)})
    deltas = np.array([row["delta"] for row in datasets])
    up, down = int((deltas > TIE).sum()), int((deltas < -TIE).sum())
    mean = {"n_datasets": len(datasets), "a": float(np.mean([r["a"] for r in datasets])),
            "b": float(np.mean([r["b"] for r in datasets])), "delta": float(deltas.mean()),
            "delta_ci95": _percentiles(np.mean(boot_means, axis=0)),
            "datasets_better": up, "datasets_worse": down, "p_sign_datasets": _sign_p(up, down)}
    return {"metric": metric, "resamples": resamples, "seed": seed_a, "ci_method": CI_METHOD,
            "a": {"run": str(run_a), "label": run_label(res_a, run_a), "run_id": res_a["run"].get("id")},
            "b": {"run": str(run_b), "label": run_label(res_b, run_b), "run_id": res_b["run"].get("id")},
            "datasets": datasets, "mean": mean}


def _percentiles(means: np.ndarray) -> list[float]:
    lo, hi = np.quantile(means, [0.025, 0.975])
    return [float(lo), float(hi)]


def _sign_p(wins: int, losses: int) -> float:
    return float(binomtest(wins, wins + losses, 0.5).pvalue) if wins + losses else 1.0


def compare_text(result: dict) -> str:
    """The comparison as a terminal table (×100)."""
    def line(name, masks, a, b, delta, ci, tally, p):
        interval = f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"
        return (f"{name[:26]:26s} {masks:>6} {100 * a:6.1f} {100 * b:6.1f} {100 * delta:+6.1f} "
                f"{interval:>14s} {tally:>11s} {p:9.2g}")

    lines = [f"{result['metric']} (×100), A − B",
             f"  A = {result['a']['label']}", f"  B = {result['b']['label']}",
             f"{'dataset':26s} {'masks':>6s} {'A':>6s} {'B':>6s} {'A−B':>6s} {'CI95':>14s} "
             f"{'wins/losses':>11s} {'p (sign)':>9s}"]
    for r in result["datasets"]:
        lines.append(line(r["dataset"], r["n_masks"], r["a"], r["b"], r["delta"], r["delta_ci95"],
                          f"{r['wins']}/{r['losses']}", r["p_sign"]))
    m = result["mean"]
    lines.append(line(f"mean ({m['n_datasets']} datasets)", "", m["a"], m["b"], m["delta"], m["delta_ci95"],
                      f"{m['datasets_better']}/{m['datasets_worse']}", m["p_sign_datasets"]))
    lines.append("CI95: paired bootstrap over images (stratified by dataset for the mean); p: two-sided "
                 "sign test over masks (over datasets for the mean), ties dropped.")
    return "\n".join(lines)
