"""The ONNX files of a run's export, written and checked at the end of fit: add the plug-in with
`--trainer.callbacks+=plugins.onnx_export.ONNXExport` (after the export of configs/defaults.yaml)."""

from pathlib import Path

from lightning import Callback, LightningModule, Trainer

from core.errors import UserError, at_least, check
from datamodules import cells
from deploy.layout import EXPORT_MODULES
from deploy.onnx_export import write_onnx
from deploy.runtimes import require
from lightning_modules.classification import SequenceClassifier
from plugins.export import HFExport


class ONNXExport(Callback):
    """After `HFExport` wrote `hf_model/`, writes `hf_model/onnx/`: `model.onnx` and
    `model.int8.onnx`, checked against the PyTorch model and measured on the run's test split;
    the model card shows what was found (`deploy.card`). For LoRA runs this is the merged model.

    Args:
        max_int8_drop: test-accuracy points the int8 file may lose against PyTorch before one
            warning says so; it is written either way.
        threads: CPU threads of ONNX Runtime while it checks (None: one per core).
        max_test_texts: test texts (evenly spaced through the split) each file's accuracy is
            measured on; the card says how many.
    """

    def __init__(self, max_int8_drop: float = 1.0, threads: int | None = None, max_test_texts: int = 2000):
        check("max_int8_drop", max_int8_drop, max_int8_drop >= 0, "points of accuracy, >= 0")
        at_least("max_test_texts", max_test_texts, 1)
        self.max_int8_drop, self.threads, self.max_test_texts = max_int8_drop, threads, max_test_texts

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """What would stop the export is refused before training."""
        if stage != "fit":
            return
        require(EXPORT_MODULES, "ONNXExport")
        if not isinstance(pl_module, SequenceClassifier):
            raise UserError(f"ONNXExport covers text classifiers, not {type(pl_module).__name__}: a "
                            "masked language model is a step towards one (docs/mlm.md); drop the "
                            "ONNXExport callback from this run")
        export = self.hf_export(trainer)
        if export is None or trainer.callbacks.index(export) > trainer.callbacks.index(self):
            raise UserError("ONNXExport exports what HFExport writes: keep plugins.export.HFExport "
                            "in trainer.callbacks, before ONNXExport")

    @staticmethod
    def hf_export(trainer: Trainer) -> HFExport | None:
        return next((c for c in trainer.callbacks if isinstance(c, HFExport)), None)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.fast_dev_run:
            return
        folder = Path(trainer.log_dir or trainer.default_root_dir) / self.hf_export(trainer).dirname
        if not trainer.is_global_zero:  # log_dir above is a collective under DDP: every rank asks
            return
        data = trainer.datamodule
        test = data.splits["test"]
        write_onnx(folder, cells.column(test, "text"), cells.column(test, "labels"),
                   data.hparams.max_length, self.max_int8_drop, self.threads, self.max_test_texts)
