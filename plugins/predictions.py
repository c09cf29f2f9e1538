"""`predict` output: the user's text, the predicted label and each class's probability."""

import csv
import json
import logging
from pathlib import Path

import torch
from lightning.pytorch.callbacks import BasePredictionWriter

log = logging.getLogger(__name__)


class PredictionWriter(BasePredictionWriter):
    """After `predict`, writes one row per text: the text, the predicted label and the
    probability of each class, as CSV or JSON Lines (by `output`'s extension). Rows are matched
    to texts by the dataset index Lightning records for every predicted row, gathered from every
    process, and written once, in input order.

    Args:
        output: file to write; relative paths are inside the run folder.
    """

    def __init__(self, output: str = "predictions.csv"):
        super().__init__(write_interval="epoch")
        self.output = output

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        path = Path(trainer.log_dir or ".") / self.output  # a collective under DDP: every rank asks
        mine = [(index, label, probs)
                for batch, indices in zip(predictions, batch_indices[0], strict=True)
                for index, label, probs in zip(indices, batch["label"], batch["probs"].tolist(), strict=True)]
        rows = sorted(from_every_process(trainer, mine))
        if not trainer.is_global_zero:
            return
        texts = trainer.datamodule.predict_texts()
        if [index for index, _, _ in rows] != list(range(len(texts))):
            raise RuntimeError(f"predict returned rows {[i for i, _, _ in rows][:20]}... for "
                               f"{len(texts)} texts: each text must be predicted exactly once")
        names = pl_module.label_names
        records = [{"text": texts[i], "label": y, **{f"prob_{n}": round(p, 6) for n, p in zip(names, ps)}}
                   for i, y, ps in rows]
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".jsonl":
            path.write_text("".join(json.dumps(record) + "\n" for record in records))
        else:
            with open(path, "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=list(records[0]))
                writer.writeheader()
                writer.writerows(records)
        log.info("wrote %d predictions to %s", len(records), path)


def from_every_process(trainer, rows: list) -> list:
    """Every process's rows, on every process (each predicted its own share of the texts)."""
    if trainer.world_size == 1:
        return rows
    shares = [None] * trainer.world_size
    torch.distributed.all_gather_object(shares, rows)
    return [row for share in shares for row in share]
