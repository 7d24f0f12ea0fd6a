"""Protocol sensitivity: how far each open choice of the paper moves a finished run's numbers.

The SAM paper leaves some protocol choices open (feed-back logits, the refinement pass, the
proposal ranking, the edge post-processing...); each task's protocol dataclass marks them
(:func:`sambench.tasks.open_choices`, with the source of the default and the values to try).
``sambench sensitivity RUN`` re-scores the run once per alternative value, everything else as
the run had it (model, datasets and their roots, seed, limit, sample lists), into
``RUN/sensitivity/<task>/<option>-<value>/``: a full run directory, so it resumes, and the
embedding cache makes it a re-decode only. For each metric the runner declares (its
``metric_spec``: names and which are headlines) it reports the value under the alternative, Δ = alternative − the run's setting per dataset and on the unweighted mean over
datasets, and a 95% CI of Δ from a paired cluster bootstrap over images (the same images
resampled in both runs; stratified by dataset for the mean). Mean-over-masks metrics (mIoU,
AR) resample per-image sums; ODS recomputes the pooled counts of each resample; AP (whole-
dataset ranking) gets no interval. Results go to ``RUN/sensitivity.json`` and the run's report.
"""
from __future__ import annotations

import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import yaml

from sambench.errors import SambenchError
from sambench.metrics.iou import BOOTSTRAP_RESAMPLES, cluster_sums, percentile_interval
from sambench.report.sensitivity import SCHEMA, load_sensitivity, table_rows
from sambench.results import atomic_write_json, load_results, scored
from sambench.tasks import Metric, entry_metrics

log = logging.getLogger("sambench")

CI_METHOD = ("paired percentile cluster bootstrap over images (the same images resampled in both "
             "runs), stratified by dataset for the mean")


def compared_metrics(entry: dict) -> list[Metric]:
    """The metrics a results entry declares (its runner's ``metric_spec``) that hold a number."""
    values = entry["metrics"]
    return [m for m in entry_metrics(entry)
            if isinstance(values.get(m.name), (int, float)) and not isinstance(values[m.name], bool)]


# -- per-image statistics behind a metric --------------------------------------------------------
def unit_values(runner: str, records: list[dict], metric: str,
                protocol: dict) -> Optional[dict[tuple[str, str], float]]:
    """{(image, unit): value} whose mean over units is ``metric`` of a run under ``protocol``,
    or None when the metric is not a mean over units (AP, ODS...). Which record rows a metric
    averages comes from the module of the runner that names it."""
    rows = [(rec["sample_id"], row) for rec in records for row in rec["rows"]]
    if runner == "point":
        from sambench.tasks.point import per_mask_metrics

        known = per_mask_metrics(protocol)
        if metric not in known:
            return None
        mode, step, column = known[metric]
        return {(s, str(r["mask"])): float(r[column]) for s, r in rows
                if r["mode"] == mode and r["step"] == step and column in r}
    if runner == "proposals":
        from sambench.tasks.proposals import ar_metrics

        bucket = ar_metrics(protocol.get("max_proposals", 1000)).get(metric)
        if bucket is None:
            return None
        return {(s, str(r["mask"])): float(np.mean(r["matched"][bucket])) for s, r in rows if bucket in r["matched"]}
    if runner == "instances":
        from sambench.tasks.instances import GT_MODES

        modes = [mode for mode, prefix in GT_MODES.items() if metric == f"{prefix}miou"]
        return {(s, str(r["mask"])): float(r["iou"]) for s, r in rows if r.get("mode") in modes} if modes else None
    if runner == "text":
        from sambench.tasks.text import PREFIX

        modes = [mode for mode, prefix in PREFIX.items() if metric == f"{prefix}miou"]
        return {(s, f"{r['mask']}/{r.get('k', '')}"): float(r["iou"]) for s, r in rows
                if r["mode"] in modes} if modes else None
    return None


def _bootstrap_mean_delta(base: dict, alt: dict, rng: np.random.Generator, resamples: int) -> Optional[np.ndarray]:
    """Resampled mean Δ over units, images resampled whole; None if the units differ."""
    if set(base) != set(alt) or not base:
        return None
    keys = sorted(base)
    d = np.array([alt[k] - base[k] for k in keys])
    sums, counts = cluster_sums(d, [k[0] for k in keys])
    idx = rng.integers(0, len(sums), size=(resamples, len(sums)))
    return sums[idx].sum(axis=1) / counts[idx].sum(axis=1)


def _bootstrap_ods_delta(base: list[dict], alt: list[dict], nthresh: int, rng: np.random.Generator,
                         resamples: int) -> Optional[np.ndarray]:
    """Resampled Δ ODS: each resample pools the drawn images' counts in both runs."""
    from sambench.metrics import bsds_scores

    def counts(records):
        return {rec["sample_id"]: np.asarray(row["counts"], np.float64) for rec in records for row in rec["rows"]}

    a, b = counts(base), counts(alt)
    if set(a) != set(b) or not a:
        return None
    ids = sorted(a)
    ca, cb = np.stack([a[i] for i in ids]), np.stack([b[i] for i in ids])
    t = bsds_scores.default_thresholds(nthresh)
    out = np.empty(resamples)
    for r in range(resamples):
        draw = rng.integers(0, len(ids), size=len(ids))
        ods = [bsds_scores.max_f(t, *bsds_scores.rpf(c[draw].sum(axis=0))[:2])[3] for c in (ca, cb)]
        out[r] = ods[1] - ods[0]
    return out


def _bootstrap_delta(runner: str, metric: str, base: list[dict], alt: list[dict], protocols: tuple[dict, dict],
                     rng: np.random.Generator, resamples: int) -> Optional[np.ndarray]:
    """Resampled Δ of ``metric`` between the run's records and the alternative's, each read
    under its own protocol; None when the metric has no paired interval."""
    if runner == "edges" and metric == "ods":
        return _bootstrap_ods_delta(base, alt, int(protocols[0].get("nthresh", 99)), rng, resamples)
    ub, ua = unit_values(runner, base, metric, protocols[0]), unit_values(runner, alt, metric, protocols[1])
    if ub is None or ua is None:
        return None
    return _bootstrap_mean_delta(ub, ua, rng, resamples)


# -- planning and running the variants ------------------------------------------------------------
def parse_vary(pairs: list[str]) -> dict[str, list]:
    """``[TASK.]OPTION=V1,V2`` strings -> {option: [values]} (values read as YAML scalars)."""
    out: dict[str, list] = {}
    for pair in pairs:
        key, sep, values = pair.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise SambenchError(f"--vary wants [TASK.]OPTION=V1,V2, got {pair!r}")
        parsed = []
        for text in values.split(","):
            try:
                parsed.append(yaml.safe_load(text))
            except yaml.YAMLError:
                parsed.append(text)
        out.setdefault(key.strip(), []).extend(parsed)
    return out


def plan(pinned: dict, vary: Optional[dict[str, list]]) -> list[dict]:
    """(task, option, the run's setting, alternative value, open?, source) to score, in order.
    Without ``vary``: every open choice of every task of the run, each alternative it declares."""
    from dataclasses import fields

    from sambench.tasks import load_task, open_choices

    out, used = [], set()
    for task in pinned["tasks"]:
        spec = load_task(task["name"], task["datasets"], task["options"])
        proto = spec.build().proto
        names = {f.name for f in fields(proto)}
        declared = open_choices(proto)
        if vary is None:
            wanted = {name: choice["values"] for name, choice in declared.items()}
        else:
            wanted = {}
            for key, values in vary.items():
                task_name, dot, option = key.rpartition(".")
                if (not dot or task_name == task["name"]) and option in names:
                    wanted[option] = values
                    used.add(key)
        for option, values in wanted.items():
            setting = getattr(proto, option)
            for value in values:
                if value == setting:
                    continue
                load_task(task["name"], task["datasets"], {**task["options"], option: value}).build()  # a bad value fails now
                out.append({"task": task["name"], "option": option, "setting": setting, "value": value,
                            "open": option in declared, "source": declared.get(option, {}).get("source", "")})
    if vary is not None and set(vary) - used:
        raise SambenchError(f"--vary: no task of this run has the option(s) {sorted(set(vary) - used)}")
    return out


def variant_dir(run_dir: Path, item: dict) -> Path:
    from sambench.paths import safe_name

    value = json.dumps(item["value"]) if not isinstance(item["value"], str) else item["value"]
    return Path(run_dir) / "sensitivity" / item["task"] / safe_name(f"{item['option']}-{value}")


def _dataset_specs(task: dict, results: dict) -> list[str]:
    """The run's datasets of a task as it named them; a bare card name (found then under
    --data-root, which the run does not record) becomes NAME=ROOT from its results entry, and
    datasets the run found absent are left out."""
    from sambench.datasets import load_cards

    roots = {e["dataset"]: e["root"] for e in results["results"] if e["task"] == task["name"] and scored(e)}
    cards = load_cards()
    out = []
    for spec in task["datasets"]:
        if "=" in spec or spec.startswith("hf:") or spec not in cards:
            out.append(spec)
        elif cards.get(spec).name in roots:
            out.append(f"{cards.get(spec).name}={roots[cards.get(spec).name]}")
    return out


def run_variant(run_dir: Path, pinned: dict, results: dict, item: dict, cache: Optional[str],
                use_cache: bool) -> Path:
    """Score one alternative: the run's settings with ``item['option'] = item['value']``."""
    from sambench.engine import RunConfig, run
    from sambench.tasks import Suite, load_task

    task = next(t for t in pinned["tasks"] if t["name"] == item["task"])
    spec = load_task(task["name"], _dataset_specs(task, results),
                     {**task["options"], item["option"]: item["value"]})
    if spec.version != task["version"]:
        raise SambenchError(f"{run_dir}: task {task['name']} is version {task['version']} there and "
                            f"{spec.version} in this sambench; rerun the run first")
    out = variant_dir(run_dir, item)
    cache = cache or (results["run"].get("embedding_cache") or {}).get("dir")
    sample_lists = {e["dataset"]: e["sample_list"]["path"] for e in results["results"]
                    if e["task"] == task["name"] and e.get("sample_list") and pinned.get("sample_lists")
                    and e["dataset"] in pinned["sample_lists"]}
    config = RunConfig(model=pinned["model"], suite=Suite(f"{pinned['suite']}-sensitivity", pinned["suite_version"],
                                                          [spec]),
                       out=out, seed=pinned["seed"], limit=pinned["limit"],
                       device=results["run"].get("device", "cpu"), dtype=pinned["dtype"],
                       explicit_datasets=True, command=shlex.join(["sambench"] + sys.argv[1:]),
                       model_options=pinned.get("model_options") or None, cache=cache, use_cache=use_cache,
                       sample_lists=sample_lists or None)
    run(config)
    return out


# -- comparing ------------------------------------------------------------------------------------
def _records(run_dir: Path, task: str, dataset: str) -> list[dict]:
    from sambench.report.records import load_records

    return sorted(load_records(run_dir, task, dataset), key=lambda r: r["sample_id"])


def compare_variant(run_dir: Path, results: dict, alt_dir: Path, item: dict, seed: int,
                    resamples: int) -> dict:
    """Per metric: the run's value, the alternative's, Δ and its paired CI, per dataset and mean."""
    from sambench.tasks import load_task

    runner = load_task(item["task"]).runner
    alt = load_results(alt_dir)
    base_entries = {e["dataset"]: e for e in results["results"] if e["task"] == item["task"] and scored(e)}
    alt_entries = {e["dataset"]: e for e in alt["results"] if e["task"] == item["task"] and scored(e)}
    names = [n for n in base_entries if n in alt_entries]
    rng = np.random.default_rng(seed)
    records = {n: (_records(run_dir, item["task"], n), _records(alt_dir, item["task"], n)) for n in names}
    out = {}
    for spec in compared_metrics(base_entries[names[0]]) if names else []:
        metric, rows, boots = spec.name, [], []
        for name in names:
            b, a = base_entries[name]["metrics"].get(metric), alt_entries[name]["metrics"].get(metric)
            if not isinstance(b, (int, float)) or not isinstance(a, (int, float)):
                continue
            protocols = (base_entries[name]["protocol"], alt_entries[name]["protocol"])
            boot = _bootstrap_delta(runner, metric, *records[name], protocols, rng, resamples)
            boots.append(boot)
            rows.append({"dataset": name, "base": b, "value": a, "delta": a - b,
                         "delta_ci95": None if boot is None else list(percentile_interval(boot))})
        if not rows:
            continue
        mean = {"n_datasets": len(rows), "base": float(np.mean([r["base"] for r in rows])),
                "value": float(np.mean([r["value"] for r in rows])),
                "delta": float(np.mean([r["delta"] for r in rows])), "delta_ci95": None}
        if all(b is not None for b in boots):
            mean["delta_ci95"] = list(percentile_interval(np.mean(boots, axis=0)))
        out[metric] = {"headline": spec.headline, "datasets": rows, "mean": mean}
    return out


def sensitivity(run_dir: Path, vary: Optional[dict[str, list]] = None, cache: Optional[str] = None,
                use_cache: bool = True, resamples: int = BOOTSTRAP_RESAMPLES) -> dict:
    """Score every alternative (resuming those already scored), compare, write sensitivity.json."""
    run_dir = Path(run_dir)
    results = load_results(run_dir)
    pinned_path = run_dir / "run.json"
    if not pinned_path.is_file():
        raise SambenchError(f"{run_dir}: no run.json (the settings of the run); cannot re-score it")
    pinned = json.loads(pinned_path.read_text())
    if pinned.get("model") is None:
        raise SambenchError(f"{run_dir}: this run used no model; nothing to re-score")
    items = plan(pinned, vary)
    if not items:
        raise SambenchError(f"{run_dir}: no open protocol option to vary in its tasks "
                            f"({', '.join(t['name'] for t in pinned['tasks'])}); name one with --vary")
    seed = int(pinned.get("seed") or 0)
    for item in items:
        log.info("sensitivity: %s %s = %s (run: %s)", item["task"], item["option"], item["value"], item["setting"])
        alt_dir = run_variant(run_dir, pinned, results, item, cache, use_cache)
        item["run"] = str(alt_dir.relative_to(run_dir))
        item["metrics"] = compare_variant(run_dir, results, alt_dir, item, seed, resamples)
    summary = {"schema": SCHEMA, "run": str(run_dir), "run_id": results["run"].get("id"),
               "model": results["model"].get("name"), "seed": seed, "resamples": resamples,
               "ci_method": CI_METHOD, "variants": items}
    atomic_write_json(run_dir / "sensitivity.json", summary)
    return summary


def _show(value) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def sensitivity_text(summary: dict) -> str:
    """The headline table for the terminal (×100)."""
    lines = [f"protocol sensitivity of {summary['run']} (×100; Δ = alternative − the run's setting, "
             "mean over datasets)",
             f"{'task':10s} {'option':18s} {'run → alternative':28s} {'metric':10s} {'run':>6s} {'alt':>6s} "
             f"{'Δ':>6s} {'Δ CI95':>15s}  per dataset Δ"]
    for r in table_rows(summary):
        change = f"{_show(r['setting'])} → {_show(r['alternative'])}"
        ci = r["delta_ci95"]
        interval = f"[{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]" if ci else "—"
        per = ", ".join(f"{name} {100 * d:+.2f}" for name, d in r["datasets"].items())
        lines.append(f"{r['task'][:10]:10s} {r['option'][:18]:18s} {change[:28]:28s} {r['metric'][:10]:10s} "
                     f"{100 * r['base']:6.2f} {100 * r['value']:6.2f} {100 * r['delta']:+6.2f} {interval:>15s}  {per}")
    lines.append(f"CI95: {summary['ci_method']}, {summary['resamples']} resamples; — : no interval "
                 "(AP is not a mean over images).")
    return "\n".join(lines)


def add_parser(sub) -> None:
    from sambench.cli import add_cache_and_report_flags

    p = sub.add_parser("sensitivity", help="re-score a run under each alternative of the protocol's open "
                       "choices: Δ per dataset and on the mean, paired CI (docs/sensitivity.md)")
    p.add_argument("run", help="a finished run directory")
    p.add_argument("--vary", action="append", default=[], metavar="[TASK.]OPTION=V1,V2",
                   help="score these values of this protocol option (repeatable; default: every open "
                        "choice of the run's tasks with the values its protocol declares)")
    add_cache_and_report_flags(p, cache_default="the run's, else $SAMBENCH_CACHE/embeddings")
    p.add_argument("--json", action="store_true", help="print sensitivity.json's content as one JSON object")
    p.set_defaults(func=_cmd)


def _cmd(args) -> int:
    vary = parse_vary(args.vary) if args.vary else None
    summary = sensitivity(Path(args.run), vary, cache=args.cache, use_cache=not args.no_cache)
    if not args.no_report:
        from sambench.report import write_report

        write_report(Path(args.run))
    if args.json:
        print(json.dumps(summary))
    else:
        print(sensitivity_text(summary))
        print(f"wrote {Path(args.run) / 'sensitivity.json'}")
    return 0


__all__ = ["sensitivity", "plan", "parse_vary", "compare_variant", "load_sensitivity", "table_rows",
           "sensitivity_text", "unit_values", "SCHEMA"]
