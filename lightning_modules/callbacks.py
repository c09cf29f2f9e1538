"""Callbacks every run gets from configs/defaults.yaml."""

import copy
import csv
import json
import logging
import time
from pathlib import Path

import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities.exceptions import SIGTERMException
from peft import PeftModel

log = logging.getLogger(__name__)


def module_state_from_checkpoint(path: str, prefix: str = "model.") -> dict:
    """The wrapped model's weights from a Lightning checkpoint, loaded without unpickling code."""
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


class HFExport(Callback):
    """At the end of `fit`, writes the best checkpoint in Hugging Face format into the run folder.

    `<run>/hf_model/`: `config.json` (with `id2label`), `model.safetensors`, tokenizer files; for
    LoRA runs the adapter is merged in, so loading it needs no peft. LoRA runs also get
    `<run>/adapter/`: `adapter_config.json` + `adapter_model.safetensors` (with the trained head),
    for `PeftModel.from_pretrained(base_model, ...)`, plus the tokenizer and `config.json`.
    """

    def __init__(self, dirname: str = "hf_model", adapter_dirname: str = "adapter"):
        self.dirname = dirname
        self.adapter_dirname = adapter_dirname

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.fast_dev_run:
            return
        run_dir = Path(trainer.log_dir or trainer.default_root_dir)  # a collective under DDP
        if trainer.is_global_zero:
            self.export(trainer, pl_module, run_dir)

    def export(self, trainer: Trainer, pl_module: LightningModule, run_dir: Path) -> None:
        model = copy.deepcopy(pl_module.model).cpu()
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if best:
            model.load_state_dict(module_state_from_checkpoint(best), strict=False)
        tokenizer = trainer.datamodule.tokenizer
        if isinstance(model, PeftModel):
            adapter_dir = run_dir / self.adapter_dirname
            model.save_pretrained(adapter_dir)
            model.get_base_model().config.save_pretrained(adapter_dir)
            tokenizer.save_pretrained(adapter_dir)
            model = model.merge_and_unload()
        model.save_pretrained(run_dir / self.dirname)
        tokenizer.save_pretrained(run_dir / self.dirname)
        log.info("exported the %s weights to %s", "best" if best else "final", run_dir / self.dirname)


class CheckpointOnSigterm(Callback):
    """On SIGTERM (what clusters send before they kill a job) Lightning stops once the current
    step is done; this writes that exact mid-epoch state to `last.ckpt`, so resuming with
    `--ckpt_path last` loses nothing."""

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        checkpoint = trainer.checkpoint_callback
        if not isinstance(exception, SIGTERMException) or checkpoint is None or not trainer.training:
            return
        path = Path(checkpoint.dirpath) / f"{checkpoint.CHECKPOINT_NAME_LAST}{checkpoint.FILE_EXTENSION}"
        trainer.save_checkpoint(path)
        log.warning("SIGTERM: saved the state after step %d to %s", trainer.global_step, path)


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


class PredictionWriter(BasePredictionWriter):
    """After `predict`, writes one row per text: the text, the predicted label and the
    probability of each class, as CSV or JSON Lines (by `output`'s extension).

    Args:
        output: file to write; relative paths are inside the run folder.
    """

    def __init__(self, output: str = "predictions.csv"):
        super().__init__(write_interval="epoch")
        self.output = output

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        path = Path(trainer.log_dir or ".") / self.output  # a collective under DDP: every rank asks
        if not trainer.is_global_zero:
            return
        texts = trainer.datamodule.predict_texts
        names = pl_module.label_names
        labels = [label for batch in predictions for label in batch["label"]]
        probs = torch.cat([batch["probs"] for batch in predictions]).tolist()
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [{"text": t, "label": y, **{f"prob_{n}": round(p, 6) for n, p in zip(names, ps)}}
                for t, y, ps in zip(texts, labels, probs)]
        if path.suffix == ".jsonl":
            path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        else:
            with open(path, "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
        log.info("wrote %d predictions to %s", len(rows), path)
