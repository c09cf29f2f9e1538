"""Training speed and accuracy on real IMDB reviews, in one process, on the same rows, from the same
weights, with the same seed, recipe and budget: (a) this project's fit loop (packed batches), (b) HF
Trainer with dynamic padding, (c) a naive loop that pads every batch to max_length. Each trains
full epochs (warm-up and compilation included), then is scored on the same held-out test reviews.

    python benchmarks/throughput.py --arch minilm --limit 1000 --data_dir ../shared/data/imdb  # CPU
    python benchmarks/throughput.py --arch distilbert --precision bf16-mixed --epochs 3 \
        --data_dir ../shared/data/imdb                                                      # GPU

`minilm` is the bundled pretrained all-MiniLM-L6-v2; `distilbert`, `bert-base` and `tiny` are random
weights of those shapes (speed does not depend on the weights). The recipe is the project's: AdamW
with weight decay 0.01 (not on biases and LayerNorm), linear warm-up over 10% of the steps then
linear decay, gradients clipped to norm 1.0; the HF Trainer and the naive loop are given the same.

Tokens are counted by a forward hook on the Hugging Face model, the same for all setups, so every
row provably sees the same reviews. MFU counts the useful (non-pad) FLOPs: 6 x body parameters per
token plus attention's 12 x layers x width x length^2 per text.
"""

import argparse
import gc
import json
import math
import os
import platform
import shutil
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
)
from transformers import Trainer as HFTrainer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from random_models import CONFIGS, body_shape, save_model  # noqa: E402

from core.errors import exit_on_user_error  # noqa: E402
from datamodules.imdb import IMDBDataModule  # noqa: E402
from datamodules.packing import PackedCollator  # noqa: E402
from lightning_modules.classification import SequenceClassifier  # noqa: E402
from lightning_modules.optim import adamw_with_warmup  # noqa: E402

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
        self.hook = model.register_forward_pre_hook(self.count, with_kwargs=True)

    def detach(self) -> None:
        self.hook.remove()

    def count(self, module, args, kwargs) -> None:
        if "cu_seq_lens_q" in kwargs:  # packed: texts end where the [PAD] segment begins
            texts = len(kwargs["labels"])
            lengths = kwargs["cu_seq_lens_q"][:texts + 1].diff().long()
        else:
            texts, lengths = len(kwargs["attention_mask"]), kwargs["attention_mask"].sum(1)
        self.samples += texts
        self.padded_tokens += kwargs["input_ids"].numel()
        self.real_tokens += lengths.sum()  # stays on the device: no sync per step
        self.real_squares += lengths.square().sum()

    def epoch_start(self) -> None:
        sync(self.device)
        self.started = time.perf_counter()

    def epoch_end(self) -> None:
        sync(self.device)
        self.epoch_s.append(time.perf_counter() - self.started)


def recipe(args) -> dict:
    """The project's recipe, as the three loops each spell it."""
    return {"learning_rate": args.learning_rate, "weight_decay": 0.01, "warmup_ratio": 0.1,
            "max_grad_norm": 1.0}


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


def run_project(args, model_dir: str, dm: IMDBDataModule, meter: Meter, packing: bool = True):
    dm.collator = (PackedCollator(dm.tokenizer.pad_token_id, args.max_length, args.packed_length_multiple)
                   if packing
                   else DataCollatorWithPadding(dm.tokenizer, pad_to_multiple_of=8))
    r = recipe(args)
    model = SequenceClassifier(backbone=model_dir, label_names=dm.label_names,
                               learning_rate=r["learning_rate"], weight_decay=r["weight_decay"],
                               warmup_ratio=r["warmup_ratio"], compile=args.compile)
    trainer = Trainer(
        accelerator="auto", devices=1, precision=args.precision, max_epochs=args.epochs,
        gradient_clip_val=r["max_grad_norm"], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
        num_sanity_val_steps=0, callbacks=[LightningTimer(meter)],
    )
    trainer.fit(model, datamodule=dm)
    return model.model


def run_project_padded(args, model_dir: str, dm: IMDBDataModule, meter: Meter):
    return run_project(args, model_dir, dm, meter, packing=False)


def run_project_no_attention_dropout(args, model_dir: str, dm: IMDBDataModule, meter: Meter):
    """Packed, without attention-probability dropout: what torch's CUDA varlen kernel computes."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    key = "attention_dropout" if config["model_type"] == "distilbert" else "attention_probs_dropout_prob"
    with tempfile.TemporaryDirectory() as copy:
        shutil.copytree(model_dir, copy, dirs_exist_ok=True)
        (Path(copy) / "config.json").write_text(json.dumps({**config, key: 0.0}))
        return run_project(args, copy, dm, meter)


def run_hf_trainer(args, model_dir: str, dm: IMDBDataModule, meter: Meter):
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    meter.attach(model)
    r = recipe(args)
    steps = args.epochs * math.ceil(len(dm.splits["train"]) / args.batch_size)
    with tempfile.TemporaryDirectory() as out:
        training = TrainingArguments(
            output_dir=out, per_device_train_batch_size=args.batch_size,
            num_train_epochs=args.epochs, learning_rate=r["learning_rate"],
            weight_decay=r["weight_decay"], warmup_steps=int(r["warmup_ratio"] * steps),
            max_grad_norm=r["max_grad_norm"], lr_scheduler_type="linear",
            fp16=args.precision == "16-mixed", bf16=args.precision == "bf16-mixed",
            use_cpu=meter.device.type == "cpu", dataloader_num_workers=args.num_workers,
            save_strategy="no", report_to="none", disable_tqdm=True, logging_steps=50,
            seed=args.seed,
        )
        HFTrainer(model=model, args=training, train_dataset=dm.splits["train"].remove_columns("text"),
                  data_collator=DataCollatorWithPadding(dm.tokenizer),
                  callbacks=[HFTimer(meter)]).train()
    return model


def run_naive(args, model_dir: str, dm: IMDBDataModule, meter: Meter):
    """Every batch padded to max_length, the loop most tutorials show."""
    device = meter.device
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).to(device).train()
    meter.attach(model)
    collator = DataCollatorWithPadding(dm.tokenizer, padding="max_length", max_length=args.max_length)
    loader = DataLoader(dm.splits["train"].remove_columns("text"), batch_size=args.batch_size, shuffle=True,
                        collate_fn=collator, num_workers=args.num_workers,
                        generator=torch.Generator().manual_seed(args.seed))
    r = recipe(args)
    steps = args.epochs * len(loader)
    config = adamw_with_warmup(model, r["learning_rate"], r["weight_decay"], r["warmup_ratio"],
                               lambda: steps)
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    half = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}.get(args.precision)
    scaler = torch.amp.GradScaler(device.type, enabled=half == torch.float16)
    for _ in range(args.epochs):
        meter.epoch_start()
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.autocast(device.type, dtype=half, enabled=half is not None):
                loss = model(**batch).loss
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), r["max_grad_norm"])
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        meter.epoch_end()
    return model


@torch.no_grad()
def test_accuracy(model: torch.nn.Module, dm: IMDBDataModule, args, device: torch.device) -> float:
    """The same scoring for every setup: padded batches of the held-out test reviews."""
    model = model.to(device).eval()
    test = dm.splits["test"].remove_columns("text")
    by_length = sorted(range(len(test)), key=lambda i: len(test[i]["input_ids"]))  # little padding
    loader = DataLoader(test.select(by_length), batch_size=64,
                        collate_fn=DataCollatorWithPadding(dm.tokenizer))
    half = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}.get(args.precision)
    correct = 0
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        labels = batch.pop("labels")
        with torch.autocast(device.type, dtype=half, enabled=half is not None):
            correct += int((model(**batch).logits.argmax(-1) == labels).sum())
    return correct / len(dm.splits["test"])


SETUPS = {
    "project": (run_project, "this project: Lightning fit, packed batches"),
    "project_padded": (run_project_padded, "this project, padded batches (--data.packing false)"),
    "project_no_attention_dropout": (run_project_no_attention_dropout,
                                     "this project, packed, no attention dropout (torch's CUDA kernel)"),
    "hf_trainer": (run_hf_trainer, "HF Trainer, dynamic padding"),
    "naive": (run_naive, "naive loop, padded to max_length"),
}


def summarize(name: str, meter: Meter, run_s: float, accuracy: float,
              flops_shape: tuple[int, int, int], peak: float | None, device: torch.device) -> dict:
    """Speed over the whole run (model set-up, warm-up and compilation included)."""
    params, layers, width = flops_shape
    real, squares = int(meter.real_tokens), int(meter.real_squares)
    seconds = run_s
    flops = 6 * params * real + 12 * layers * width * squares
    return {
        "setup": name, "description": SETUPS[name][1], "samples": meter.samples,
        "real_tokens": real, "padded_tokens": meter.padded_tokens,
        "padding_fraction": round(1 - real / meter.padded_tokens, 4),
        "epoch_s": [round(s, 2) for s in meter.epoch_s], "seconds": round(seconds, 2),
        "test_accuracy": round(accuracy, 4),
        "samples_per_s": round(meter.samples / seconds, 1),
        "real_tokens_per_s": round(real / seconds),
        "model_tflops_per_s": round(flops / seconds / 1e12, 3),
        "mfu": round(flops / seconds / 1e12 / peak, 4) if peak else None,
        "peak_memory_gib": (round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
                            if device.type == "cuda" else None),
    }


def print_table(results: list[dict]) -> None:
    base = next((r for r in results if r["setup"] == "hf_trainer"), None)
    print("| setup | samples/s | vs HF Trainer | test acc | real tokens/s | padding | MFU | peak memory "
          "| whole run | epochs |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        ratio = f"{r['samples_per_s'] / base['samples_per_s']:.2f}x" if base else "-"
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "-"
        memory = f"{r['peak_memory_gib']} GiB" if r["peak_memory_gib"] is not None else "-"
        epochs = " / ".join(f"{s:.1f}" for s in r["epoch_s"])
        print(f"| {r['description']} | {r['samples_per_s']:.1f} | {ratio} | {r['test_accuracy']:.3f} "
              f"| {r['real_tokens_per_s']:,} | {100 * r['padding_fraction']:.1f}% | {mfu} | {memory} "
              f"| {r['seconds']:.1f} s | {epochs} s |")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=["minilm", *CONFIGS], default="minilm",
                        help="minilm: the bundled pretrained model; others: random weights")
    parser.add_argument("--data_dir", default=None,
                        help="local IMDB copy (split files or aclImdb folders); default: the hub")
    parser.add_argument("--precision", default=None,
                        help="16-mixed, bf16-mixed or 32; default 16-mixed on a GPU, 32 on the CPU")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_length", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="training reviews (default: all)")
    parser.add_argument("--test_samples", type=int, default=1000, help="held-out test reviews scored")
    parser.add_argument("--compile", action="store_true", help="the project's torch.compile switch")
    parser.add_argument("--packed_length_multiple", type=int, default=256,
                        help="the project's rounding of packed rows (--data.packed_length_multiple)")
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
        model_dir = str(save_model(args.arch, Path(tmp) / args.arch, seed=args.seed))
        flops_shape = body_shape(AutoModelForSequenceClassification.from_pretrained(model_dir))
        dm = IMDBDataModule(tokenizer=model_dir, data_dir=args.data_dir, max_length=args.max_length,
                            batch_size=args.batch_size, limit_train_samples=args.limit,
                            limit_test_samples=args.test_samples, num_workers=args.num_workers,
                            seed=args.seed, cache_dir=args.cache_dir)
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
            sync(device)
            started = time.perf_counter()
            model = SETUPS[name][0](args, model_dir, dm, meter)
            sync(device)
            run_s = time.perf_counter() - started
            meter.detach()
            accuracy = test_accuracy(model, dm, args, device)
            results.append(summarize(name, meter, run_s, accuracy, flops_shape, peak, device))
            print(f"{name}: {run_s:.1f} s, test accuracy {accuracy:.4f}", flush=True)
            del model
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()

    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else (
        f"CPU {platform.machine()}, {torch.get_num_threads()} threads")
    weights = "pretrained" if args.arch == "minilm" else "random weights"
    print(f"\n{args.arch} ({weights}), {len(dm.splits['train']):,} IMDB training reviews, "
          f"{len(dm.splits['test']):,} test reviews, max_length {args.max_length}, batch "
          f"{args.batch_size}, precision {args.precision}, {args.epochs} epoch(s), on {device_name}\n")
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
