"""Training speed and accuracy on real IMDB reviews or AG News articles, in one process, on the same
rows, from the same weights, with the same seed, recipe and budget: (a) this project's fit loop
(packed batches), (b) HF Trainer with dynamic padding, (c) a naive loop that pads every batch to
max_length. Each trains full epochs (warm-up and compilation included), then is scored on the same
held-out test texts.

    python benchmarks/throughput.py --arch minilm --limit 1000 --data_dir ../shared/data/imdb  # CPU
    python benchmarks/throughput.py --dataset ag_news --max_length 128 --batch_size 16 --limit 2000 \
        --data_dir ../shared/data/ag_news                                                   # short texts
    python benchmarks/throughput.py --arch distilbert --precision bf16-mixed --epochs 3 \
        --data_dir ../shared/data/imdb                                                      # GPU

`minilm` is the bundled pretrained all-MiniLM-L6-v2; `distilbert`, `bert-base` and `tiny` are random
weights of those shapes (speed does not depend on the weights). The recipe is the project's: AdamW
with weight decay 0.01 (not on biases and LayerNorm), linear warm-up over 10% of the steps then
linear decay, gradients clipped to norm 1.0; the HF Trainer and the naive loop are given the same.
This project's Trainer runs the callbacks and logging interval of configs/defaults.yaml, less what
writes or shows a run (see `loops.py`); HF Trainer logs as often.

Tokens are counted by a forward hook on the Hugging Face model, the same for all setups, so every
row provably sees the same reviews. MFU counts the useful (non-pad) FLOPs: 6 x body parameters per
token plus attention's 12 x layers x width x length^2 per text.
"""

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the loaders fork worker processes

import gc
from argparse import Namespace
from pathlib import Path
from tempfile import TemporaryDirectory

import torch
from transformers import AutoModelForSequenceClassification

from benchmarks.common import RESULTS, Timer, device, machine, parser, table, write_report
from benchmarks.loops import FIXED_PRECISION, SETUPS, Meter, test_accuracy
from benchmarks.random_models import CONFIGS, body_shape, save_model
from core.cpu_precision import cpu_precision
from core.errors import exit_on_user_error
from datamodules.ag_news import AGNewsDataModule
from datamodules.classification import TextClassificationDataModule
from datamodules.imdb import IMDBDataModule

# Dense peak TFLOP/s by GPU name: (16-bit tensor cores, fp32 without TF32).
PEAK_TFLOPS = {"H100 PCIe": (756.0, 51.0), "H100": (989.4, 66.9), "H200": (989.4, 66.9),
               "A100": (312.0, 19.5), "L4": (121.0, 30.3)}


DATASETS = {"imdb": IMDBDataModule, "ag_news": AGNewsDataModule}


def peak_tflops(device: torch.device, precision: str) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, (half, full) in PEAK_TFLOPS.items():
        if key in name:
            return full if precision == "32" else half
    return None


def summarize(name: str, precision: str, meter: Meter, run_s: float, accuracy: float,
              flops_shape: tuple[int, int, int], peak: float | None, device: torch.device) -> dict:
    """Speed over the whole run (model set-up, warm-up and compilation included)."""
    params, layers, width = flops_shape
    real, squares = int(meter.real_tokens), int(meter.real_squares)
    flops = 6 * params * real + 12 * layers * width * squares
    return {
        "setup": name, "description": SETUPS[name][1], "precision": precision, "samples": meter.samples,
        "real_tokens": real, "padded_tokens": meter.padded_tokens,
        "padding_fraction": round(1 - real / meter.padded_tokens, 4),
        "epoch_s": [round(s, 2) for s in meter.epoch_s], "seconds": round(run_s, 2),
        "test_accuracy": round(accuracy, 4),
        "samples_per_s": round(meter.samples / run_s, 1),
        "real_tokens_per_s": round(real / run_s),
        "model_tflops_per_s": round(flops / run_s / 1e12, 3),
        "mfu": round(flops / run_s / 1e12 / peak, 4) if peak else None,
        "peak_memory_gib": (round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
                            if device.type == "cuda" else None),
    }


def print_table(results: list[dict]) -> None:
    """Each setup against HF Trainer's faster setting among those measured."""
    rate = {r["setup"]: r["samples"] / r["seconds"] for r in results}  # unrounded: coarse on a CPU
    base = max((rate[r["setup"]] for r in results if r["setup"].startswith("hf_trainer")), default=None)
    rows = []
    for r in results:
        ratio = f"{rate[r['setup']] / base:.2f}x" if base else "-"
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "-"
        memory = f"{r['peak_memory_gib']} GiB" if r["peak_memory_gib"] is not None else "-"
        epochs = " / ".join(f"{s:.1f}" for s in r["epoch_s"])
        rows.append([r["description"], r["precision"], f"{r['samples_per_s']:.1f}", ratio,
                     f"{r['test_accuracy']:.3f}", f"{r['real_tokens_per_s']:,}",
                     f"{100 * r['padding_fraction']:.1f}%", mfu, memory,
                     f"{r['seconds']:.1f} s", f"{epochs} s"])
    print(table(["setup", "precision", "samples/s", "vs HF Trainer's faster", "test acc", "real tokens/s",
                 "padding", "MFU", "peak memory", "whole run", "epochs"], rows))


def parse_args():
    options = parser(__doc__, None, data_dir=None, batch_size=32, max_length=512, seed=42)
    options.add_argument("--dataset", choices=list(DATASETS), default="imdb",
                         help="IMDB reviews (2 classes) or AG News articles (4 classes)")
    options.add_argument("--arch", choices=["minilm", *CONFIGS], default="minilm",
                         help="minilm: the bundled pretrained model; others: random weights")
    options.add_argument("--precision", default=None,
                         help="16-mixed, bf16-mixed or 32 for every setup; default 16-mixed on a GPU, and "
                              "auto on the CPU: HF Trainer in fp32 and bf16=True, the project in what "
                              "train.py picks on this CPU")
    options.add_argument("--epochs", type=int, default=1)
    options.add_argument("--limit", type=int, default=None, help="training reviews (default: all)")
    options.add_argument("--test_samples", type=int, default=1000, help="held-out test reviews scored")
    options.add_argument("--compile", action="store_true", help="the project's torch.compile switch")
    options.add_argument("--packed_length_multiple", type=int, default=None,
                         help="the project's rounding of packed rows (--data.packed_length_multiple; "
                              "default: 256 with --compile, else none)")
    options.add_argument("--setups", default="project,hf_trainer,hf_trainer_bf16,naive")
    options.add_argument("--num_workers", type=int, default=2)
    options.add_argument("--learning_rate", type=float, default=5e-5)
    options.add_argument("--cache_dir", default=".cache/tokenized")
    args = options.parse_args()
    unknown = set(args.setups.split(",")) - set(SETUPS)
    if unknown:
        options.error(f"unknown setups {sorted(unknown)}; choose from {list(SETUPS)}")
    return args


def setup_precision(name: str, args, model_dir: str) -> str:
    """The precision setup `name` trains in (see `loops.FIXED_PRECISION`)."""
    if args.precision != "auto":
        return args.precision
    if name in FIXED_PRECISION:
        return FIXED_PRECISION[name]
    chosen, why = cpu_precision(model_dir, args.max_length)
    print(f"{name}: {chosen} ({why})", flush=True)
    return "32" if chosen == "32-true" else chosen


def run_setup(name: str, args, model_dir: str, dm: TextClassificationDataModule,
              where: torch.device) -> tuple[str, Meter, float, float]:
    """(its precision, what the loop was fed, its whole-run seconds, its test accuracy)."""
    args = Namespace(**{**vars(args), "precision": setup_precision(name, args, model_dir)})
    torch.manual_seed(args.seed)
    if where.type == "cuda":
        torch.cuda.reset_peak_memory_stats(where)
    meter = Meter(where)
    with Timer(where) as run:
        model = SETUPS[name][0](args, model_dir, dm, meter)
    meter.detach()
    accuracy = test_accuracy(model, dm, args, where)
    print(f"{name}: {run.seconds:.1f} s, test accuracy {accuracy:.4f}", flush=True)
    del model
    gc.collect()
    if where.type == "cuda":
        torch.cuda.empty_cache()
    return args.precision, meter, run.seconds, accuracy


def main() -> None:
    args = parse_args()
    where = device()
    args.precision = args.precision or ("16-mixed" if where.type == "cuda" else "auto")
    peak = peak_tflops(where, args.precision)
    with TemporaryDirectory() as tmp:
        # every model here has MiniLM's tokenizer (benchmarks.random_models)
        dm = DATASETS[args.dataset](tokenizer="minilm", data_dir=args.data_dir, max_length=args.max_length,
                                    batch_size=args.batch_size, limit_train_samples=args.limit,
                                    limit_test_samples=args.test_samples, num_workers=args.num_workers,
                                    seed=args.seed, cache_dir=args.cache_dir,
                                    packed_length_multiple=args.packed_length_multiple)
        model_dir = str(save_model(args.arch, Path(tmp) / args.arch, args.seed, tuple(dm.label_names)))
        flops_shape = body_shape(AutoModelForSequenceClassification.from_pretrained(model_dir))
        dm.prepare_data()
        dm.setup("fit")
        if where.type == "cuda":  # CUDA context and cuBLAS start before any clock does
            torch.ones(64, 64, device=where).matmul(torch.ones(64, 64, device=where))
        results = [summarize(name, *run_setup(name, args, model_dir, dm, where), flops_shape, peak, where)
                   for name in args.setups.split(",")]

    weights = "pretrained" if args.arch == "minilm" else "random weights"
    print(f"\n{args.arch} ({weights}), {args.dataset}: {len(dm.splits['train']):,} training texts, "
          f"{len(dm.splits['test']):,} test texts, max_length {args.max_length}, batch "
          f"{args.batch_size}, precision {args.precision}, {args.epochs} epoch(s), on {machine(where)}\n")
    print_table(results)
    name = f"throughput-{args.dataset}-{args.max_length}-{args.arch}-{where.type}.json"
    write_report(args.out or RESULTS / name, {
        "peak_tflops": peak, **{k: v for k, v in vars(args).items() if k not in ("out", "cache_dir")},
        "results": results})


if __name__ == "__main__":
    exit_on_user_error(main)
