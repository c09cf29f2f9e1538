"""Training throughput on real IMDB reviews, in one process, on the same data, weights, precision
and batch size: (a) this project's fit loop, (b) HF Trainer with dynamic padding, (c) a naive loop
that pads every batch to max_length. Every setup trains full epochs, shape warm-up included.

    python benchmarks/throughput.py --arch distilbert --data_dir ../shared/data/imdb  # GPU
    python benchmarks/throughput.py --arch tiny --limit 512 --max_length 256          # CPU check

Tokens are counted by a forward hook on the Hugging Face model, the same for all three setups,
so every row sees exactly the same reviews. MFU counts the useful (non-pad) FLOPs:
6 x body parameters per token plus attention's 12 x layers x width x length^2 per text.
"""

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from lightning import Callback, Trainer  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    TrainerCallback,
    TrainingArguments,
    get_linear_schedule_with_warmup,
)
from transformers import Trainer as HFTrainer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from random_models import body_shape, save_random_model  # noqa: E402

from datamodules.imdb import IMDBDataModule  # noqa: E402
from lightning_modules.classifier import SequenceClassifier  # noqa: E402
from lightning_modules.errors import exit_on_user_error  # noqa: E402

# Dense peak TFLOP/s by GPU name: (16-bit tensor cores, fp32 without TF32).
PEAK_TFLOPS = {"H100 PCIe": (756.0, 51.0), "H100": (989.4, 66.9), "H200": (989.4, 66.9),
               "A100": (312.0, 19.5), "L4": (121.0, 30.3)}


def peak_tflops(device: torch.device, precision: str) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, (half, full) in PEAK_TFLOPS.items():
        if key in name:
            return full if precision == "32" else half
    return None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Meter:
    """Counts what the model is fed (forward pre-hook) and times each epoch."""

    def __init__(self, device: torch.device):
        self.device = device
        self.samples = self.padded_tokens = 0
        self.real_tokens = torch.zeros((), dtype=torch.long, device=device)
        self.real_squares = torch.zeros((), dtype=torch.long, device=device)
        self.epoch_s: list[float] = []
        self.started = 0.0

    def attach(self, model: torch.nn.Module) -> None:
        model.register_forward_pre_hook(self.count, with_kwargs=True)

    def count(self, module, args, kwargs) -> None:
        mask = kwargs["attention_mask"]
        lengths = mask.sum(1)
        self.samples += mask.shape[0]
        self.padded_tokens += mask.numel()
        self.real_tokens += lengths.sum()  # stays on the device: no sync per step
        self.real_squares += lengths.square().sum()

    def epoch_start(self) -> None:
        sync(self.device)
        self.started = time.perf_counter()

    def epoch_end(self) -> None:
        sync(self.device)
        self.epoch_s.append(time.perf_counter() - self.started)


class LightningTimer(Callback):
    def __init__(self, meter: Meter):
        self.meter = meter

    def on_fit_start(self, trainer, pl_module) -> None:
        self.meter.attach(pl_module.model)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.meter.epoch_start()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.meter.epoch_end()


class HFTimer(TrainerCallback):
    def __init__(self, meter: Meter):
        self.meter = meter

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.meter.epoch_start()

    def on_epoch_end(self, args, state, control, **kwargs):
        self.meter.epoch_end()


def run_project(args, model_dir: str, dm: IMDBDataModule, meter: Meter) -> None:
    model = SequenceClassifier(backbone=model_dir, label_names=dm.label_names,
                               learning_rate=args.learning_rate, warmup_ratio=0.0, compile=args.compile)
    trainer = Trainer(
        accelerator="auto", devices=1, precision=args.precision, max_epochs=args.epochs,
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        callbacks=[LightningTimer(meter)],
    )
    trainer.fit(model, datamodule=dm)


def run_hf_trainer(args, model_dir: str, dm: IMDBDataModule, meter: Meter) -> None:
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    meter.attach(model)
    with tempfile.TemporaryDirectory() as out:
        training = TrainingArguments(
            output_dir=out, per_device_train_batch_size=args.batch_size,
            num_train_epochs=args.epochs, learning_rate=args.learning_rate,
            fp16=args.precision == "16-mixed", bf16=args.precision == "bf16-mixed",
            use_cpu=meter.device.type == "cpu", dataloader_num_workers=args.num_workers,
            save_strategy="no", report_to="none", disable_tqdm=True, logging_steps=50,
            seed=args.seed,
        )
        HFTrainer(model=model, args=training, train_dataset=dm.splits["train"],
                  data_collator=DataCollatorWithPadding(dm.tokenizer),
                  callbacks=[HFTimer(meter)]).train()


def run_naive(args, model_dir: str, dm: IMDBDataModule, meter: Meter) -> None:
    """Every batch padded to max_length, the loop most tutorials show."""
    device = meter.device
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).to(device).train()
    meter.attach(model)
    collator = DataCollatorWithPadding(dm.tokenizer, padding="max_length", max_length=args.max_length)
    loader = DataLoader(dm.splits["train"], batch_size=args.batch_size, shuffle=True,
                        collate_fn=collator, num_workers=args.num_workers,
                        generator=torch.Generator().manual_seed(args.seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, args.epochs * len(loader))
    half = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}.get(args.precision)
    scaler = torch.amp.GradScaler(device.type, enabled=half == torch.float16)
    for _ in range(args.epochs):
        meter.epoch_start()
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.autocast(device.type, dtype=half, enabled=half is not None):
                loss = model(**batch).loss
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        meter.epoch_end()


SETUPS = {
    "project": (run_project, "this project: Lightning fit, length buckets"),
    "hf_trainer": (run_hf_trainer, "HF Trainer, dynamic padding"),
    "naive": (run_naive, "naive loop, padded to max_length"),
}


def summarize(name: str, meter: Meter, flops_shape: tuple[int, int, int], peak: float | None,
              device: torch.device) -> dict:
    params, layers, width = flops_shape
    real, squares = int(meter.real_tokens), int(meter.real_squares)
    seconds = sum(meter.epoch_s)
    flops = 6 * params * real + 12 * layers * width * squares
    return {
        "setup": name, "description": SETUPS[name][1], "samples": meter.samples,
        "real_tokens": real, "padded_tokens": meter.padded_tokens,
        "padding_fraction": round(1 - real / meter.padded_tokens, 4),
        "epoch_s": [round(s, 2) for s in meter.epoch_s], "seconds": round(seconds, 2),
        "samples_per_s": round(meter.samples / seconds, 1),
        "real_tokens_per_s": round(real / seconds),
        "model_tflops_per_s": round(flops / seconds / 1e12, 3),
        "mfu": round(flops / seconds / 1e12 / peak, 4) if peak else None,
        "peak_memory_gib": (round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
                            if device.type == "cuda" else None),
    }


def print_table(results: list[dict]) -> None:
    base = next((r for r in results if r["setup"] == "hf_trainer"), None)
    print("| setup | samples/s | vs HF Trainer | real tokens/s | padding | MFU | peak memory | epoch s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        ratio = f"{r['samples_per_s'] / base['samples_per_s']:.2f}x" if base else "-"
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "-"
        memory = f"{r['peak_memory_gib']} GiB" if r["peak_memory_gib"] is not None else "-"
        epochs = " / ".join(f"{s:.1f}" for s in r["epoch_s"])
        print(f"| {r['description']} | {r['samples_per_s']:.1f} | {ratio} | {r['real_tokens_per_s']:,} "
              f"| {100 * r['padding_fraction']:.1f}% | {mfu} | {memory} | {epochs} |")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=["distilbert", "bert-base", "tiny"], default="distilbert")
    parser.add_argument("--data_dir", default=None,
                        help="local IMDB copy (split files or aclImdb folders); default: the hub")
    parser.add_argument("--precision", default=None,
                        help="16-mixed, bf16-mixed or 32; default 16-mixed on a GPU, 32 on the CPU")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_length", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="training reviews (default: all)")
    parser.add_argument("--bucket_width", type=int, default=64, help="the project's length buckets")
    parser.add_argument("--compile", action="store_true", help="the project's torch.compile switch")
    parser.add_argument("--setups", default="project,hf_trainer,naive")
    parser.add_argument("--num_workers", type=int, default=2)
    parser.add_argument("--learning_rate", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--cache_dir", default=".cache/tokenized")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/...)")
    args = parser.parse_args()
    unknown = set(args.setups.split(",")) - set(SETUPS)
    if unknown:
        parser.error(f"unknown setups {sorted(unknown)}; choose from {list(SETUPS)}")
    return args


def main() -> None:
    args = parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    args.precision = args.precision or ("16-mixed" if device.type == "cuda" else "32")
    peak = peak_tflops(device, args.precision)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(save_random_model(args.arch, Path(tmp) / args.arch))
        flops_shape = body_shape(AutoModelForSequenceClassification.from_pretrained(model_dir))
        dm = IMDBDataModule(tokenizer=model_dir, data_dir=args.data_dir, max_length=args.max_length,
                            batch_size=args.batch_size, limit_train_samples=args.limit,
                            limit_test_samples=args.batch_size, num_workers=args.num_workers,
                            seed=args.seed, cache_dir=args.cache_dir, bucket_width=args.bucket_width)
        dm.prepare_data()
        dm.setup("fit")
        if device.type == "cuda":  # CUDA context and cuBLAS start before any clock does
            torch.ones(64, 64, device=device).matmul(torch.ones(64, 64, device=device))
        results = []
        for name in args.setups.split(","):
            torch.manual_seed(args.seed)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            meter = Meter(device)
            SETUPS[name][0](args, model_dir, dm, meter)
            results.append(summarize(name, meter, flops_shape, peak, device))
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()

    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else (
        f"CPU {platform.machine()}, {torch.get_num_threads()} threads")
    print(f"\n{args.arch} (random weights), {len(dm.splits['train']):,} IMDB training reviews, "
          f"max_length {args.max_length}, batch {args.batch_size}, precision {args.precision}, "
          f"{args.epochs} epoch(s), on {device_name}\n")
    print_table(results)
    report = {"device": device_name, "peak_tflops": peak, "torch": torch.__version__,
              **{k: v for k, v in vars(args).items() if k not in ("out", "cache_dir")},
              "results": results}
    out = Path(args.out or f"benchmarks/results/throughput-{args.arch}-{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    exit_on_user_error(main)
