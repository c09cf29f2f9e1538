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
