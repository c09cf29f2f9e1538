"""What a run costs, logged while it trains."""

import time

import torch
from lightning import Callback, LightningModule, Trainer


class TrainingMonitor(Callback):
    """Logs what a run costs: samples/s, real (non-pad) tokens/s, padding fraction, epoch time,
    and peak GPU memory; every `log_every_n_steps` batches, measured over that window."""

    def __init__(self):
        self.window_start = self.epoch_start = 0.0
        self.samples = self.real_tokens = self.tokens = 0

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.epoch_start = self.window_start = time.perf_counter()
        self.samples = self.real_tokens = self.tokens = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch: dict, batch_idx: int) -> None:
        ids = batch["input_ids"]
        self.tokens += ids.numel()
        if "cu_seq_lens_q" in batch:  # packed: one row, texts end where the [PAD] segment begins
            texts = len(batch["labels"])
            real = batch["cu_seq_lens_q"][texts]
        else:
            texts = ids.shape[0]
            mask = batch.get("attention_mask")
            real = mask.sum() if mask is not None else ids.numel()
        self.samples += texts
        # stays a device tensor between logging steps: reading it every batch would stall the GPU
        self.real_tokens = self.real_tokens + real
        if (batch_idx + 1) % trainer.log_every_n_steps:
            return
        real_tokens = float(self.real_tokens)  # waits for the GPU, so the window's time is right
        seconds = time.perf_counter() - self.window_start
        metrics = {
            "throughput/samples_per_sec": self.samples / seconds,
            "throughput/real_tokens_per_sec": real_tokens / seconds,
            "throughput/padding_fraction": 1 - real_tokens / self.tokens,
        }
        if ids.is_cuda:
            metrics["memory/peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
        pl_module.log_dict(metrics, rank_zero_only=True)
        self.window_start = time.perf_counter()
        self.samples = self.real_tokens = self.tokens = 0

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        pl_module.log("time/epoch_s", time.perf_counter() - self.epoch_start, rank_zero_only=True)
