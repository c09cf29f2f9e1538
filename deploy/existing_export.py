"""`python export.py onnx FOLDER`: the ONNX files of an export that a finished run left, checked
on that run's own test split (its data module rebuilt from the run's `config.yaml`), and the
export's model card brought up to date."""

from pathlib import Path

from lightning.pytorch.cli import instantiate_class

from core.errors import UserError, at_least, check
from datamodules import cells
from deploy.card import update_card
from deploy.layout import EXPORT_MODULES, classifier_labels, run_config
from deploy.onnx_export import write_onnx
from deploy.runtimes import require


def run_test_split(folder: Path, labels: list[str]) -> tuple[list[str], list[int], int]:
    """(texts, label ids, max tokens per text) of the test split of the run that exported `folder`."""
    config = run_config(folder)
    if config is None:
        raise UserError(f"'{folder}' is not in a run folder (no config.yaml and hparams.yaml beside "
                        "it): the checks run on the run's own test split")
    data = config["data"]  # the export's tokenizer is the run's; config.yaml leaves the linked option out
    data_module = instantiate_class((), {**data, "init_args": {**data["init_args"],
                                                               "tokenizer": str(folder)}})
    if list(data_module.label_names) != labels:
        raise UserError(f"the run's data has classes {data_module.label_names}, its export {labels}")
    data_module.prepare_data()
    data_module.setup("test")
    test = data_module.splits["test"]
    return cells.column(test, "text"), cells.column(test, "labels"), data_module.hparams.max_length


def onnx(model: str, max_int8_drop: float = 1.0, threads: int | None = None,
         max_test_texts: int = 2000) -> dict:
    """Write MODEL/onnx/: model.onnx (fp32) and model.int8.onnx, checked and measured.

    ONNX Runtime's logits are checked against PyTorch's, each file's accuracy is measured on the
    run's test split, and the model card gets what was found.

    Args:
        model: a run's export folder (logs/.../version_N/hf_model).
        max_int8_drop: test-accuracy points the int8 file may lose against PyTorch before one
            warning says so; it is written either way.
        threads: CPU threads of ONNX Runtime while it checks (default: one per core).
        max_test_texts: test texts (evenly spaced through the split) each file's accuracy is
            measured on; the card says how many.
    """
    check("--max_int8_drop", max_int8_drop, max_int8_drop >= 0, "points of accuracy, >= 0")
    at_least("--max_test_texts", max_test_texts, 1)
    require(EXPORT_MODULES, "ONNX export")
    folder = Path(model).expanduser()
    texts, labels, max_length = run_test_split(folder, classifier_labels(folder))
    found = write_onnx(folder, texts, labels, max_length, max_int8_drop, threads, max_test_texts)
    update_card(folder)
    return found
