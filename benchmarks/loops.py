"""The training loops `throughput.py` compares, each fed the same rows from the same weights with
the same recipe, and one scoring for all: this project's fit (packed or padded), HF Trainer with
dynamic padding, and a naive loop that pads every batch to max_length."""

import json
import math
import shutil
import tempfile
from pathlib import Path

import torch
from lightning import Callback, Trainer
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
from torch.utils.data import DataLoader
from transformers import (
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    TrainerCallback,
    TrainingArguments,
)
from transformers import Trainer as HFTrainer

from benchmarks.common import Timer, default_callbacks, trainer_defaults
from core.batches import num_texts
from datamodules.classification import TextClassificationDataModule
from datamodules.packing import PackedCollator
from lightning_modules.classification import SequenceClassifier
from lightning_modules.optim import adamw_with_warmup
from plugins.export import HFExport

# What writes or shows a run (checkpoints, the learning-rate log, the progress bar, the export):
# HF Trainer and the naive loop are given none of it either. The rest of configs/defaults.yaml
# (non-finite-loss stop, gradient norm, throughput monitor, RNG state) runs as in every real run.
OUTPUTS = (ModelCheckpoint, LearningRateMonitor, TQDMProgressBar, HFExport)


class Meter:
    """Counts the batches each loop trains on and times each epoch."""

    def __init__(self, device: torch.device):
        self.device = device
        self.samples = self.padded_tokens = 0
        self.real_tokens = torch.zeros((), dtype=torch.long, device=device)
        self.real_squares = torch.zeros((), dtype=torch.long, device=device)
        self.epoch_s: list[float] = []
        self.timer = Timer(device)
        self.hook = None

    def attach(self, model: torch.nn.Module) -> None:
        """Counts every batch `model` is called on (HF Trainer's and the naive loop's)."""
        self.hook = model.register_forward_pre_hook(lambda module, args, kwargs: self.count(kwargs),
                                                    with_kwargs=True)

    def detach(self) -> None:
        """Stops counting (HF Trainer's and the naive loop's): scoring the test set is no training."""
        if self.hook is not None:
            self.hook.remove()

    def count(self, batch: dict) -> None:
        texts = num_texts(batch)
        if "cu_seq_lens_q" in batch:  # packed: texts end where the [PAD] segment begins
            lengths = batch["cu_seq_lens_q"][:texts + 1].diff().long()
        else:
            lengths = batch["attention_mask"].sum(1)
        self.samples += texts
        self.padded_tokens += batch["input_ids"].numel()
        self.real_tokens += lengths.sum()  # stays on the device: no sync per step
        self.real_squares += lengths.square().sum()

    def epoch_start(self) -> None:
        self.timer.start()

    def epoch_end(self) -> None:
        self.epoch_s.append(self.timer.stop())


def recipe(args) -> dict:
    """The project's recipe, as the three loops each spell it."""
    return {"learning_rate": args.learning_rate, "weight_decay": 0.01, "warmup_ratio": 0.1,
            "max_grad_norm": 1.0}


def autocast_dtype(precision: str) -> torch.dtype | None:
    return {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}.get(precision)


class LightningTimer(Callback):
    def __init__(self, meter: Meter):
        self.meter = meter

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.meter.count(batch)

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


def run_project(args, model_dir: str, dm: TextClassificationDataModule, meter: Meter, packing: bool = True):
    # --packed_length_multiple, or (None) the data module's default for the model, set in its setup
    multiple = args.packed_length_multiple or 1
    dm.collator = (PackedCollator(dm.tokenizer.pad_token_id, args.max_length, multiple)
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
        num_sanity_val_steps=0, log_every_n_steps=trainer_defaults()["log_every_n_steps"],
        callbacks=[*default_callbacks(leave_out=OUTPUTS), LightningTimer(meter)],
    )
    trainer.fit(model, datamodule=dm)
    return model.model


def run_project_padded(args, model_dir: str, dm: TextClassificationDataModule, meter: Meter):
    return run_project(args, model_dir, dm, meter, packing=False)


def run_project_no_attention_dropout(args, model_dir: str, dm: TextClassificationDataModule, meter: Meter):
    """Packed, without attention-probability dropout: what torch's CUDA varlen kernel computes."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    key = "attention_dropout" if config["model_type"] == "distilbert" else "attention_probs_dropout_prob"
    with tempfile.TemporaryDirectory() as copy:
        shutil.copytree(model_dir, copy, dirs_exist_ok=True)
        (Path(copy) / "config.json").write_text(json.dumps({**config, key: 0.0}))
        return run_project(args, copy, dm, meter)


def run_hf_trainer(args, model_dir: str, dm: TextClassificationDataModule, meter: Meter):
    """HF Trainer in the run's precision (`--precision`; `bf16=True` for bf16-mixed)."""
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=dm.num_labels)
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
            save_strategy="no", report_to="none", disable_tqdm=True, seed=args.seed,
            logging_steps=trainer_defaults()["log_every_n_steps"],  # as often as this project's loop
        )
        HFTrainer(model=model, args=training, train_dataset=dm.splits["train"].remove_columns("text"),
                  data_collator=DataCollatorWithPadding(dm.tokenizer),
                  callbacks=[HFTimer(meter)]).train()
    return model


def run_naive(args, model_dir: str, dm: TextClassificationDataModule, meter: Meter):
    """Every batch padded to max_length, the loop most tutorials show."""
    device = meter.device
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=dm.num_labels)
    model = model.to(device).train()
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
    half = autocast_dtype(args.precision)
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
def test_accuracy(model: torch.nn.Module, dm: TextClassificationDataModule, args,
                  device: torch.device) -> float:
    """The same scoring for every setup: padded batches of the held-out test reviews."""
    model = model.to(device).eval()
    test = dm.splits["test"].remove_columns("text")
    by_length = sorted(range(len(test)), key=lambda i: len(test[i]["input_ids"]))  # little padding
    loader = DataLoader(test.select(by_length), batch_size=64,
                        collate_fn=DataCollatorWithPadding(dm.tokenizer))
    half = autocast_dtype(args.precision)
    correct = 0
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        labels = batch.pop("labels")
        with torch.autocast(device.type, dtype=half, enabled=half is not None):
            correct += int((model(**batch).logits.argmax(-1) == labels).sum())
    return correct / len(dm.splits["test"])


# The precision each setup trains in where the benchmark's --precision is `auto` (on the CPU): HF
# Trainer in both of its settings, so that the project is compared with the faster one on the CPU
# at hand; the project in what a run of train.py would pick (`core.cpu_precision`).
FIXED_PRECISION = {"hf_trainer": "32", "hf_trainer_bf16": "bf16-mixed", "naive": "32"}

SETUPS = {
    "project": (run_project, "this project: Lightning fit, packed batches"),
    "project_padded": (run_project_padded, "this project, padded batches (--data.packing false)"),
    "project_no_attention_dropout": (run_project_no_attention_dropout,
                                     "this project, packed, no attention dropout (torch's CUDA kernel)"),
    "hf_trainer": (run_hf_trainer, "HF Trainer, dynamic padding"),
    "hf_trainer_bf16": (run_hf_trainer, "HF Trainer, dynamic padding, bf16=True"),
    "naive": (run_naive, "naive loop, padded to max_length"),
}
