"""What this project's training loop costs per step over a plain PyTorch loop doing the same work.

Both train the same tiny random BERT on the same fixed batches from a DataLoader, with the same
AdamW parameter groups and per-step schedule. The project's side is `SequenceClassifier` in a
Lightning Trainer with the per-step machinery of `configs/defaults.yaml`, built from that file:
TensorBoard logger, its logging interval (loss, learning rate, gradient norm, throughput) and its
callbacks (checkpoints, progress bar, non-finite-loss stop...) but the export, which needs a data
module and runs after the last step. The two alternate `--repeats` times; the table shows the
median time per step after `--warmup` steps.

    python benchmarks/loop_overhead.py
"""

from pathlib import Path
from tempfile import TemporaryDirectory

import torch
from lightning import Callback, Trainer, seed_everything
from torch.utils.data import DataLoader
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from benchmarks.common import (
    RESULTS,
    Timer,
    default_callbacks,
    median_ms,
    parser,
    table,
    trainer_defaults,
    write_report,
)
from benchmarks.random_models import random_token_ids, save_random_model
from lightning_modules.classification import SequenceClassifier
from lightning_modules.optim import adamw_with_warmup
from plugins.export import HFExport
from plugins.logger import ClaimingTensorBoardLogger


def fixed_batches(tokenizer, steps: int, batch_size: int, length: int, seed: int) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    return [{"input_ids": random_token_ids(tokenizer, (batch_size, length), generator),
             "attention_mask": torch.ones(batch_size, length, dtype=torch.long),
             "labels": torch.randint(0, 2, (batch_size,), generator=generator)}
            for _ in range(steps)]


def plain_loop(model_dir: str, batches: list[dict], warmup: int, seed: int) -> float:
    """Seconds per step after `warmup` steps."""
    seed_everything(seed)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).train()
    config = adamw_with_warmup(model, 5e-5, 0.01, 0.1, lambda: len(batches))
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    timer = Timer()
    for step, batch in enumerate(DataLoader(batches, batch_size=None)):
        if step == warmup:
            timer.start()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return timer.stop() / (len(batches) - warmup)


class StepClock(Callback):
    """From the start of step `warmup` to the end of the last step."""

    def __init__(self, warmup: int):
        self.warmup, self.timer = warmup, Timer()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            self.timer.start()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.timer.stop()


def project_loop(model_dir: str, batches: list[dict], warmup: int, seed: int, log_dir: str) -> float:
    seed_everything(seed)
    module = SequenceClassifier(model_dir, ["neg", "pos"], learning_rate=5e-5, warmup_ratio=0.1)
    clock = StepClock(warmup)
    trainer = Trainer(
        accelerator="cpu", max_epochs=1, enable_model_summary=False,
        log_every_n_steps=trainer_defaults()["log_every_n_steps"],
        logger=ClaimingTensorBoardLogger(log_dir, name="overhead", default_hp_metric=False),
        callbacks=[*default_callbacks(leave_out=(HFExport,)), clock],
    )
    trainer.fit(module, DataLoader(batches, batch_size=None))
    return clock.timer.seconds / (len(batches) - warmup)


def main() -> None:
    options = parser(__doc__, str(RESULTS / "loop_overhead.json"), batch_size=16, steps=120, seed=0)
    options.add_argument("--arch", default="tiny", choices=["tiny", "distilbert", "bert-base"])
    options.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    options.add_argument("--length", type=int, default=128, help="tokens per row")
    options.add_argument("--repeats", type=int, default=5, help="runs of each loop, alternating")
    args = options.parse_args()

    plain, project = [], []
    with TemporaryDirectory() as tmp:
        model_dir = str(save_random_model(args.arch, Path(tmp) / "model", seed=args.seed))
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        batches = fixed_batches(tokenizer, args.steps, args.batch_size, args.length, args.seed)
        for _ in range(args.repeats):
            plain.append(plain_loop(model_dir, batches, args.warmup, args.seed))
            project.append(project_loop(model_dir, batches, args.warmup, args.seed, tmp))
    plain_ms, project_ms = median_ms(plain), median_ms(project)
    overhead = project_ms / plain_ms - 1
    print(f"\n{args.arch} random BERT, batch {args.batch_size} x {args.length} tokens, "
          f"{args.steps - args.warmup} timed steps, median of {args.repeats}, "
          f"{torch.get_num_threads()} CPU threads\n")
    print(table(["loop", "ms per step", "runs (ms)"], [
        ["plain PyTorch", f"{plain_ms:.1f}", ", ".join(f"{1000 * s:.1f}" for s in plain)],
        ["this project (Lightning)", f"{project_ms:.1f}", ", ".join(f"{1000 * s:.1f}" for s in project)]]))
    print(f"\noverhead: {100 * overhead:+.1f}% per step")
    write_report(args.out, {**vars(args), "plain_ms": plain_ms, "project_ms": project_ms,
                            "overhead": overhead, "plain_runs_s": plain, "project_runs_s": project})


if __name__ == "__main__":
    main()
