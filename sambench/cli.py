"""The ``sambench`` command. Each subcommand is a thin layer over the Python API.

User mistakes raise :class:`SambenchError`; ``main`` prints them as one line and exits 2.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import json
import logging
import os
import shlex
import sys
import time
from pathlib import Path

import yaml

from sambench.errors import SambenchError

log = logging.getLogger("sambench")

# OSErrors that are the user's environment, not a bug: one line, exit 2.
_ENVIRONMENT_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR,
                       errno.EISDIR, errno.EEXIST, errno.ENOENT, errno.ENAMETOOLONG, errno.EMFILE}

# Modules that add their own subcommand with ``add_parser(subparsers)``.
_SUBCOMMAND_MODULES: list[str] = ["sambench.report.cli", "sambench.train.cli",
                                   "sambench.metrics.bsds_cli", "sambench.bench",
                                   "sambench.amg.cli", "sambench.tasks.concept_eval",
                                   "sambench.sensitivity"]


def _add_run(sub) -> None:
    p = sub.add_parser("run", help="evaluate a model on a suite or task (no arguments: the demo)")
    p.add_argument("--model", help="NAME[:CHECKPOINT] or FAMILY:NAME, e.g. sam:vit_b (`sambench models list`; "
                   "default: the suite's model)")
    p.add_argument("--suite", help="suite name or YAML file (default: demo, unless --task)")
    p.add_argument("--task", help="run only this task (of the suite, or alone: on --dataset, else on "
                   "its bundled synthetic data)")
    p.add_argument("--dataset", action="append", default=[],
                   help="NAME (or an alias, e.g. coco), NAME=ROOT, a COCO-style folder, or "
                        "hf:REPO_ID[:CONFIG][@SPLIT] / hf:FOLDER (Hugging Face; repeatable)")
    p.add_argument("--stream", action="store_true",
                   help="stream hf: Hub datasets instead of downloading them whole")
    p.add_argument("--data-root", help="folder holding datasets under their card's dirname")
    p.add_argument("--out", help="run directory (default: runs/<suite>-<model>-<time>)")
    p.add_argument("--limit", type=int, help="at most N images per dataset")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="float32 is the parity path; bfloat16 is faster only on GPUs and CPUs with "
                        "bf16 units (AVX512-BF16/AMX), elsewhere much slower (docs/sam.md)")
    p.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the model's loader, e.g. attention=sdpa or compile=true "
                        "for sam (repeatable; recorded in results.json)")
    add_cache_and_report_flags(p)
    p.add_argument("--restart", action="store_true",
                   help="start --out over: remove its records and pins instead of resuming")
    p.add_argument("--verify-data", action="store_true",
                   help="pin (and on resume check) the images' content hashes, not only sizes and mtimes")
    _add_max_pixels(p)
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--sample-list", action="append", default=[], metavar="FILE",
                   help="evaluate exactly the masks of this list (from `sambench datasets sample`; repeatable)")
    p.add_argument("--task-option", action="append", default=[], metavar="[TASK.]KEY=VALUE",
                   help="an option of the run's tasks that have it (or of TASK only), value read as "
                        "YAML, e.g. n_points=[1,3] or point.first_point=[center] (repeatable; "
                        "recorded in results.json's protocol)")
    p.add_argument("--detections", metavar="FILE",
                   help="alias of --task-option detections=FILE (instances task): detector boxes to "
                        "prompt with (COCO results JSON)")
    p.add_argument("--box-source", metavar="NAME",
                   help="alias of --task-option box_source=NAME (instances task): the detector the "
                        "--detections boxes come from (e.g. vitdet-h, focalnet-dino); recorded, and "
                        "published rows show only for the same boxes")
    p.add_argument("--prompt", choices=["detections", "gt-box"],
                   help="alias of --task-option prompt=... (instances task): prompt with the detections "
                        "or the ground-truth boxes")
    p.add_argument("--text-detections", metavar="FILE",
                   help="text task (alias of --task-option text_detections=FILE plus modes=[det,det+point]): "
                        "prompt with a text-conditioned detector's boxes instead of text "
                        "(JSON [{image_id, phrase, box: [x0, y0, x1, y1], score}], docs/text.md)")
    p.add_argument("--text-encoder", metavar="NAME[:ARG]",
                   help="alias of --task-option text_encoder=... (text task): minilm, clip:DIR, hash; "
                        "default: the checkpoint's")
    p.add_argument("--phrases", choices=["auto", "expressions", "description", "category"],
                   help="alias of --task-option phrases=... (text task): where phrases come from "
                        "(default auto)")
    _add_hub_flags(p)
    p.set_defaults(func=cmd_run)


def add_cache_and_report_flags(parser, cache_default: str = "$SAMBENCH_CACHE/embeddings") -> None:
    """``--cache``, ``--no-cache`` and ``--no-report``: the flags of each command that runs tasks
    into a run directory (``run``, ``sensitivity``)."""
    parser.add_argument("--cache", help=f"embedding cache folder (default: {cache_default})")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write cached embeddings")
    parser.add_argument("--no-report", action="store_true", help="do not write the run's report.html")


def _add_max_pixels(parser) -> None:
    parser.add_argument("--max-pixels", type=int, metavar="N",
                        help="largest image decoded, in pixels (default 100000000; also $SAMBENCH_MAX_PIXELS)")


def _add_hub_flags(parser) -> None:
    parser.add_argument("--offline", action="store_true",
                        help="no network access (also SAMBENCH_OFFLINE=1): named checkpoints and Hub "
                             "datasets must already be cached")
    parser.add_argument("--allow-unverified", action="store_true",
                        help="accept a named checkpoint that has no published sha256 (the first download "
                             "records its hash; also SAMBENCH_ALLOW_UNVERIFIED=1)")


def _apply_hub_flags(args) -> None:
    """The flags become environment variables, so every loader (and huggingface_hub) sees them."""
    if getattr(args, "offline", False):
        os.environ["SAMBENCH_OFFLINE"] = os.environ["HF_HUB_OFFLINE"] = "1"
    if getattr(args, "allow_unverified", False):
        os.environ["SAMBENCH_ALLOW_UNVERIFIED"] = "1"
    if getattr(args, "stream", False):
        os.environ["SAMBENCH_STREAM"] = "1"


def parse_options(pairs: list[str], flag: str = "--model-option", scalars: bool = True) -> dict:
    """``KEY=VALUE`` strings → keyword arguments; values are read as YAML (``true`` → True,
    ``4`` → 4, ``sdpa`` → "sdpa"; with ``scalars`` False also lists and mappings)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SambenchError(f"{flag} wants KEY=VALUE, got {pair!r}")
        try:
            parsed = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            parsed = value
        kept = (bool, int, float, str) if scalars else (bool, int, float, str, list, dict, type(None))
        options[key.strip()] = parsed if isinstance(parsed, kept) else value
    return options


ALIASES = ("detections", "box_source", "prompt", "text_detections", "text_encoder", "phrases")  # --flag: --task-option flag=


def _task_options(args, suite) -> None:
    """--task-option [TASK.]KEY=VALUE, and the older flags that are its aliases, set an option on
    every task of the run whose runner has it (or on TASK only); an option no task has is an
    error. --text-detections also switches the text task to the detector's modes."""
    from sambench.tasks import RUNNERS

    given = [(f"--task-option {target}", target, value)
             for target, value in parse_options(args.task_option, "--task-option", scalars=False).items()]
    for key in ALIASES:
        value = getattr(args, key)
        if value:
            value = str(Path(value).expanduser().resolve()) if key.endswith("detections") else value
            given.append((f"--{key.replace('_', '-')}", key, value))
    if args.text_detections:
        given.append(("--text-detections", "modes", ["det", "det+point"]))
    for flag, target, value in given:
        name, _, key = target.rpartition(".")
        tasks = [t for t in suite.tasks if name in ("", t.name)
                 and key in RUNNERS.get(t.runner).options_class.__dataclass_fields__]
        if not tasks:
            raise SambenchError(f"{flag}: no task of this run has the option {key!r}")
        for task in tasks:
            task.options[key] = value


def _plan(args):
    from sambench.tasks import Suite, load_suite, load_task

    if args.task and not args.suite:
        task = load_task(args.task, args.dataset)
        if not args.dataset:
            if not task.bundled:
                raise SambenchError(f"task {args.task} has no bundled data: pass --dataset NAME[=DIR] "
                                    "(see `sambench datasets list`)")
            task.datasets = list(task.bundled)
            log.info("no --dataset: running %s on its bundled synthetic data (%s)", args.task, ", ".join(task.datasets))
        suite = Suite(name=args.task, version=1, tasks=[task])
    else:
        suite = load_suite(args.suite or "demo")
        if args.task:
            suite.tasks = [t for t in suite.tasks if t.name == args.task]
            if not suite.tasks:
                raise SambenchError(f"suite {suite.name} has no task {args.task!r}")
        if args.dataset:
            for t in suite.tasks:
                t.datasets = list(args.dataset)
    return suite


def _sample_lists(args, suite) -> dict:
    """--sample-list files by dataset name; each must name a dataset this run evaluates."""
    from sambench.datasets import load_cards, sample_lists_by_dataset

    by_name = sample_lists_by_dataset(args.sample_list)
    cards = load_cards()
    planned = {cards.canonical(spec.partition("=")[0]) or spec.partition("=")[0]
               for t in suite.tasks for spec in t.datasets}
    for name, path in by_name.items():
        if name not in planned:
            raise SambenchError(f"sample list {path} is for dataset {name}, which this run does not evaluate")
    return by_name


def cmd_run(args) -> int:
    from sambench.engine import RunConfig, run
    from sambench.models import split_spec

    suite = _plan(args)
    _task_options(args, suite)
    model = args.model or suite.model or None  # None: allowed when no task uses a model
    if not model and any(task.build().uses_model for task in suite.tasks):
        raise SambenchError(f"suite {suite.name} names no model: pass --model NAME[:CHECKPOINT]")
    if args.limit is not None and args.limit < 1:
        raise SambenchError("--limit must be at least 1")
    _check_device(args.device)
    if not args.out and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise SambenchError("--out is required when running under torchrun (all ranks share it)")
    out = Path(args.out) if args.out else Path("runs") / (
        f"{suite.name}-{Path(split_spec(model or 'none')[0]).stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    config = RunConfig(model=model, suite=suite, out=out, seed=args.seed, limit=args.limit,
                       device=args.device, dtype=args.dtype, data_root=args.data_root,
                       model_options=parse_options(args.model_option),
                       explicit_datasets=bool(args.dataset), cache=args.cache,
                       use_cache=not args.no_cache, sample_lists=_sample_lists(args, suite),
                       restart=args.restart, verify_data=args.verify_data,
                       command=shlex.join(["sambench"] + sys.argv[1:]))
    results = run(config)
    if results is None:  # a torchrun rank other than 0: rank 0 writes results and report
        return 0
    if not args.no_report:
        from sambench.report import write_report

        write_report(out)
    if args.json:
        print(json.dumps(results))
    else:
        from sambench.report.tables import results_text

        print(results_text(results))
        print(f"run directory: {out}")
        if not args.no_report:
            print(f"report: {out / 'report.html'}")
    return 0


def _add_models(sub) -> None:
    p = sub.add_parser("models", help="list models or describe one")
    msub = p.add_subparsers(dest="action", required=True)
    msub.add_parser("list", help="registered models and named checkpoints").set_defaults(func=cmd_models_list)
    info = msub.add_parser("info", help="inferred config, parameter count and sha256")
    info.add_argument("spec", help="NAME[:CHECKPOINT], or a checkpoint path (family inferred from its keys)")
    info.add_argument("--json", action="store_true")
    _add_hub_flags(info)
    info.set_defaults(func=cmd_models_info)
    rnd = msub.add_parser("random", help="write a checkpoint of random weights in a family's released "
                          "layout (tests, demos; every tensor random)")
    rnd.add_argument("family", help="a model family (see `sambench models list`)")
    rnd.add_argument("preset", help="a size of that family, e.g. tiny, vit_b, vit_t, vit_tiny")
    rnd.add_argument("path", help="output .pth/.pt or .safetensors")
    rnd.add_argument("--seed", type=int, default=0)
    rnd.set_defaults(func=cmd_models_random)
    fetch = msub.add_parser("fetch", help="download and verify named checkpoints into the cache (for offline use later)")
    fetch.add_argument("names", nargs="+", help="FAMILY:NAME, e.g. sam:vit_b")
    _add_hub_flags(fetch)
    fetch.set_defaults(func=cmd_models_fetch)


def _check_device(device: str) -> None:
    import torch

    try:
        torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise SambenchError(f"--device {device!r} is not a device torch knows ({str(exc).splitlines()[0]})") from None


def cmd_models_list(args) -> int:
    from sambench import hub
    from sambench.models import list_models

    for name, description in list_models():
        print(f"{name:16s} {description}")
    print(f"\nnamed checkpoints (--model FAMILY:NAME; cached in {hub.checkpoint_dir()}):")
    for name, description in hub.describe():
        print(f"{name:22s} {description}")
    return 0


def cmd_models_fetch(args) -> int:
    from sambench import hub

    for name in args.names:
        if name not in hub.table():
            raise SambenchError(f"no named checkpoint {name!r} (see `sambench models list`)")
        print(f"{name}: {hub.fetch(name)}")
    return 0


def cmd_models_info(args) -> int:
    from sambench.models import describe

    info = describe(args.spec)
    if args.json:
        print(json.dumps(info))
    else:
        for key in ("family", "variant", "params", "sha256", "checkpoint", "name", "config",
                    "capabilities"):
            value = info[key]
            print(f"{key:12s} {json.dumps(value) if isinstance(value, dict) else value}")
    return 0


def cmd_models_random(args) -> int:
    from sambench.models import get_family
    from sambench.models.family import random_checkpoint

    path = random_checkpoint(get_family(args.family), args.path, args.preset, seed=args.seed)
    print(path)
    return 0


def _add_datasets(sub) -> None:
    p = sub.add_parser("datasets", help="dataset cards, presence, checks, sample lists, synthetic data")
    dsub = p.add_subparsers(dest="action", required=True)
    lst = dsub.add_parser("list", help="known datasets (and which are present under --data-root)")
    lst.add_argument("--data-root")
    lst.set_defaults(func=cmd_datasets_list)
    chk = dsub.add_parser("check", help="verify a downloaded dataset against its card "
                          "(exit 0 clean, 1 problems or count mismatch, 2 unusable)")
    chk.add_argument("name", help="card name (see `sambench datasets list`)")
    _add_root(chk)
    _add_max_pixels(chk)
    chk.set_defaults(func=cmd_datasets_check)
    smp = dsub.add_parser("sample", help="write the frozen list of (image, mask) ids to evaluate "
                          "(the paper's >15k-mask subsampling, from a seed)")
    smp.add_argument("name", help="card name")
    _add_root(smp)
    smp.add_argument("--out", required=True, help="sample list JSON to write")
    smp.add_argument("--seed", type=int, default=0)
    smp.set_defaults(func=cmd_datasets_sample)
    tbl = dsub.add_parser("table", help="the datasets table (markdown) rendered from the cards")
    tbl.add_argument("--out", help="write to this file (default: print)")
    tbl.set_defaults(func=cmd_datasets_table)
    syn = dsub.add_parser("synth", help="write a synthetic COCO-format dataset")
    syn.add_argument("--out", required=True)
    syn.add_argument("--domain", default="shapes")
    syn.add_argument("--images", type=int, default=10)
    syn.add_argument("--seed", type=int, default=0)
    syn.set_defaults(func=cmd_datasets_synth)


def _add_root(parser) -> None:
    parser.add_argument("--root", help="the dataset's folder")
    parser.add_argument("--data-root", help="or the folder holding it under the card's dirname")


def _dataset_ref(args):
    from sambench.datasets import resolve

    if args.root:
        return resolve(f"{args.name}={args.root}")
    return resolve(args.name, args.data_root)


def cmd_datasets_list(args) -> int:
    from sambench.datasets import load_cards

    cards = load_cards()
    print(f"{'name':16s} {'aliases':26s} {'domain':24s} {'split':22s} {'format':10s} {'images':>7s} "
          f"{'masks':>7s}  status")
    for name, card in cards.items():
        status = ""
        if card.synthetic is not None:
            status = "bundled"
        elif args.data_root:
            folder = Path(args.data_root) / (card.dirname or name)
            status = f"present ({folder})" if folder.exists() else "absent"
        print(f"{name:16s} {','.join(card.aliases)[:26]:26s} {card.domain[:24]:24s} {card.split[:22]:22s} {card.format:10s} "
              f"{card.expected.get('images', ''):>7} {card.expected.get('masks', ''):>7}  {status}")
    return 0


def cmd_datasets_check(args) -> int:
    from sambench.datasets.check import check

    report = check(_dataset_ref(args))
    print(report.text())
    return report.exit_code


def cmd_datasets_sample(args) -> int:
    from sambench.datasets import draw

    ref = _dataset_ref(args)
    chosen = draw(ref.open(), ref.name, args.seed)
    digest = chosen.write(Path(args.out))
    how = "subsampled by the paper's rule" if chosen.subsampled else "whole dataset (<= 15000 masks)"
    print(f"{ref.name}: {len(chosen.images)} images, {chosen.n_masks} masks ({how}, seed {args.seed})")
    print(f"wrote {args.out} (sha256 {digest})")
    return 0


def cmd_datasets_table(args) -> int:
    from sambench.datasets.cards import render_table

    text = render_table()
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0


def cmd_datasets_synth(args) -> int:
    from sambench.datasets import synth

    if args.domain not in synth.DOMAINS:
        raise SambenchError(f"unknown synthetic domain {args.domain!r} (known: {', '.join(synth.DOMAINS)})")
    out = Path(args.out)
    synth.write_dataset(out, name=out.name, domain=args.domain, n_images=args.images, seed=args.seed)
    print(f"wrote {args.images} images and annotations.json to {out}")
    return 0


def _add_cache(sub) -> None:
    p = sub.add_parser("cache", help="the on-disk embedding cache")
    p.add_argument("action", choices=["info", "clear"])
    p.add_argument("--cache", help="cache folder (default: $SAMBENCH_CACHE/embeddings)")
    p.set_defaults(func=cmd_cache)


def cmd_cache(args) -> int:
    from sambench.cache import EmbeddingCache
    from sambench.datasets import cache_dir

    cache = EmbeddingCache(Path(args.cache) if args.cache else cache_dir() / "embeddings")
    if args.action == "clear":
        print(f"removed {cache.clear()} cached embeddings from {cache.root}")
    else:
        entries = cache.entries()
        size = sum(st.st_size for _, st in entries)
        print(f"{cache.root}: {len(entries)} embeddings, {size / 2**20:.1f} MiB "
              f"(cap {cache.max_bytes / 2**30:.0f} GiB)")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's one-line error form (``sambench: error: ...``, exit 2)."""

    def error(self, message: str):
        self.exit(2, f"sambench: error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from sambench import __version__

    parser = _Parser(prog="sambench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"sambench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command")
    _add_run(sub)
    _add_datasets(sub)
    _add_models(sub)
    _add_cache(sub)
    for module in _SUBCOMMAND_MODULES:
        importlib.import_module(module).add_parser(sub)
    return parser


def _reader_left() -> bool:
    """Whether stdout is a pipe whose reading end is closed (poll reports an error on it)."""
    try:
        import select

        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), or stdout is not a real file
        return False


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        argv = ["run"]  # `sambench` alone runs the demo, like `sambench run`
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="sambench: %(levelname)s: %(message)s", stream=sys.stderr)
    try:
        from sambench import validate

        validate.set_max_pixels(getattr(args, "max_pixels", None))
        _apply_hub_flags(args)
        status = args.func(args)
        sys.stdout.flush()  # inside the try: a reader that left shows here, not at interpreter exit
        return status
    except BrokenPipeError:
        if not _reader_left():
            raise  # another pipe (a reference subprocess): a real failure
        # `sambench ... | head` read what it wanted: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush has nowhere to fail
        return 141  # 128 + SIGPIPE, the status a shell reports for `ls | head`
    except SambenchError as exc:
        print(f"sambench: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the machine's: a full disk, a read-only or missing folder
        if exc.errno not in _ENVIRONMENT_ERRORS:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"sambench: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sambench: interrupted (rerun with the same --out to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
