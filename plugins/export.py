"""The best checkpoint in Hugging Face format, written into the run folder at the end of fit."""

import copy
import logging
from pathlib import Path

from lightning import Callback, LightningModule, Trainer
from peft import PeftModel

from deploy.layout import record_max_length
from plugins.hub import push_export
from plugins.model_card import write_model_cards

log = logging.getLogger(__name__)


class HFExport(Callback):
    """At the end of `fit`, writes the best checkpoint in Hugging Face format into the run folder.

    `<run>/hf_model/`: `config.json` (with `id2label`), `model.safetensors`, tokenizer files (its
    `model_max_length` the run's `data.max_length`, so that the folder predicts as trained); for
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
        """The best checkpoint goes into a module rebuilt from the hyperparameters it holds, on the
        CPU and outside any wrapper: under FSDP the live module's layers are sharded, and a copy of
        them is no model to save."""
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if best:  # rebuilt from the checkpoint's hparams; a lean checkpoint's frozen weights are the
            # rebuilt backbone's (`EncoderModule.on_load_checkpoint`); the rebuild's line that a
            # head starts fresh is the run's first line again, and untrue of what is exported
            rebuild_log = logging.getLogger("lightning_modules")
            level = rebuild_log.level
            rebuild_log.setLevel(logging.ERROR)
            try:
                model = type(pl_module).load_from_checkpoint(best, map_location="cpu").model
            finally:
                rebuild_log.setLevel(level)
        else:
            model = copy.deepcopy(pl_module.model).cpu()
        tokenizer = trainer.datamodule.tokenizer
        if isinstance(model, PeftModel):
            adapter_dir = run_dir / self.adapter_dirname
            model.save_pretrained(adapter_dir)
            model.get_base_model().config.save_pretrained(adapter_dir)
            tokenizer.save_pretrained(adapter_dir)
            model = model.merge_and_unload()
        model.save_pretrained(run_dir / self.dirname)
        tokenizer.save_pretrained(run_dir / self.dirname)
        max_length = trainer.datamodule.hparams.get("max_length")
        for folder in (run_dir / self.dirname, run_dir / self.adapter_dirname):
            if max_length and folder.is_dir():  # the export predicts at the length it was trained at
                record_max_length(folder, max_length)
        log.info("exported the %s weights to %s", "best" if best else "final", run_dir / self.dirname)

    def publish(self, trainer: Trainer, config, module: LightningModule, test: dict) -> None:
        """The export's model cards from what the run holds after fit (so after its test), and the
        push to the hub where `--push_to_hub` asks for it; on the process of rank 0."""
        run_dir = Path(trainer.log_dir)  # a collective under DDP: every process asks
        if not trainer.is_global_zero:
            return
        folders = [run_dir / name for name in (self.dirname, self.adapter_dirname)
                   if (run_dir / name).is_dir()]
        write_model_cards(run_dir, config, trainer, module, test, folders, config.push_to_hub)
        if config.push_to_hub:
            push_export(config.push_to_hub, config.hub_private, folders)
