"""Callbacks every run gets from configs/defaults.yaml."""

import copy
import logging
from pathlib import Path

import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only

log = logging.getLogger(__name__)


def module_state_from_checkpoint(path: str, prefix: str = "model.") -> dict:
    """The wrapped Hugging Face model's weights from a Lightning checkpoint, without unpickling code."""
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


class HFExport(Callback):
    """At the end of `fit`, writes the best checkpoint as a Hugging Face model directory.

    The folder (`<run dir>/<dirname>`) holds `config.json` with `id2label`, `model.safetensors`
    and the tokenizer, so `from_pretrained` and `pipeline(...)` load it directly.
    """

    def __init__(self, dirname: str = "hf_model"):
        self.dirname = dirname

    @rank_zero_only
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        model = copy.deepcopy(pl_module.model).cpu()
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if best:
            model.load_state_dict(module_state_from_checkpoint(best))
        out = Path(trainer.log_dir) / self.dirname
        model.save_pretrained(out)
        trainer.datamodule.tokenizer.save_pretrained(out)
        log.info("exported %s model to %s", "best" if best else "final", out)
