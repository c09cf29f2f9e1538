"""What a run costs, logged while it trains."""

import time

import torch
from lightning import Callback, LightningModule, Trainer

from core.batches import num_texts


class TrainingMonitor(Callback):
    """Logs what a run costs: samples/s, real (non-pad) tokens/s, padding fraction (all three over
    every process), epoch time, and peak GPU memory (rank 0's); every `log_every_n_steps` batches,
    measured over that window."""

    def __init__(self):
        self.window_start = self.epoch_start = 0.0
        self.samples = self.real_tokens = self.tokens = 0

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.epoch_start = self.window_start = time.perf_counter()
        self.samples = self.real_tokens = self.tokens = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch: dict, batch_idx: int) -> None:
        ids = batch["input_ids"]
        self.tokens += ids.numel()
        texts = num_texts(batch)
        if "cu_seq_lens_q" in batch:  # packed: one row, texts end where the [PAD] segment begins
            real = batch["cu_seq_lens_q"][texts]
        else:
            mask = batch.get("attention_mask")
            real = mask.sum() if mask is not None else ids.numel()
        self.samples += texts
        # stays a device tensor between logging steps: reading it every batch would stall the GPU
        self.real_tokens = self.real_tokens + real
        if (batch_idx + 1) % trainer.log_every_n_steps:
            return
        # summed over every process (a collective: all ranks reach the same batch_idx); reading it
        # waits for the GPU, so the window's time is right
        window = torch.stack([torch.as_tensor(n, dtype=torch.long, device=pl_module.device)
                              for n in (self.samples, self.real_tokens, self.tokens)])
        samples, real_tokens, tokens = trainer.strategy.reduce(window, reduce_op="sum").tolist()
        seconds = time.perf_counter() - self.window_start
        metrics = {
            "throughput/samples_per_sec": samples / seconds,
            "throughput/real_tokens_per_sec": real_tokens / seconds,
            "throughput/padding_fraction": 1 - real_tokens / tokens,
        }
        if ids.is_cuda:
            metrics["memory/peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
        pl_module.log_dict(metrics, rank_zero_only=True)
        self.window_start = time.perf_counter()
        self.samples = self.real_tokens = self.tokens = 0

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        pl_module.log("time/epoch_s", time.perf_counter() - self.epoch_start, rank_zero_only=True)
