"""What an export folder holds and where: `hf_model/` (PyTorch weights, tokenizer, config), its
`onnx/` folder (fp32 and int8 ONNX files, the tokenizer and config again so that it ships alone,
and `checks.json`, what was checked and measured when they were written), and the run folder
around it, whose `config.yaml` says how many tokens the model was trained on. Each folder carries
that length itself too, as its tokenizer's `model_max_length`, so that it predicts as it was
checked wherever it ships."""

import hashlib
import json
from pathlib import Path

import yaml

from core.errors import UserError

ONNX_DIR = "onnx"
FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}  # runtime -> file in onnx/
CHECKS = "checks.json"
WEIGHTS = "model.safetensors"
TOKENIZER_CONFIG = "tokenizer_config.json"
# runtime -> the file it runs, in the export folder (the keys of checks.json's sizes)
RUNTIME_FILES = {"torch": WEIGHTS, **{runtime: f"{ONNX_DIR}/{name}" for runtime, name in FILES.items()}}
EXTRA = "pip install -e '.[onnx]'"
EXPORT_MODULES = ("onnx", "onnxruntime", "onnxscript")  # what the ONNX export needs (the extra)


def model_config(folder: Path) -> dict:
    """The folder's `config.json`, or one line saying what the folder is instead."""
    if not folder.is_dir():
        raise UserError(f"model folder '{folder}' does not exist")
    if (folder / "adapter_config.json").is_file():
        raise UserError(f"'{folder}' holds a LoRA adapter only; export or predict its run's hf_model/ "
                        f"({folder.parent / 'hf_model'}), where the adapter is merged into the model")
    path = folder / "config.json"
    if not path.is_file():
        raise UserError(f"'{folder}' has no config.json: expected an export folder (a run's hf_model/)")
    return json.loads(path.read_text())


def classifier_labels(folder: Path) -> list[str]:
    """The class names of a sequence classifier export, in id order; a masked LM is refused: it
    is a step towards a classifier (docs/mlm.md), not a model to deploy."""
    config = model_config(folder)
    architectures = config.get("architectures") or []
    if any(a.endswith("ForMaskedLM") for a in architectures):
        raise UserError(f"'{folder}' is a masked language model ({architectures[0]}): deployment "
                        "covers text classifiers; fine-tune it on labelled text first (docs/mlm.md)")
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise UserError(f"'{folder}' is no text classifier (architectures {architectures})")
    id2label = config["id2label"]
    return [id2label[str(i)] for i in range(len(id2label))]


def weights_digest(folder: Path) -> str:
    """sha256 of the PyTorch weights, which `checks.json` records: an `onnx/` folder left from
    other weights (a re-export of the run) is then told apart from a current one."""
    with open(folder / WEIGHTS, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def onnx_file(folder: Path, runtime: str) -> Path:
    """The ONNX file a runtime runs: in `folder/onnx/` of an export, or in `folder` when it is
    the `onnx/` folder itself; an `onnx/` folder from other weights than the export's is refused."""
    name = FILES[runtime]
    if (folder / name).is_file():
        return folder / name
    path = folder / ONNX_DIR / name
    if not path.is_file():
        raise UserError(f"'{folder}' has no {ONNX_DIR}/{name}: write it with python export.py onnx {folder}")
    checks = folder / ONNX_DIR / CHECKS
    if not checks.is_file():
        raise UserError(f"{folder / ONNX_DIR} has no {CHECKS}: its export did not finish; run python "
                        f"export.py onnx {folder} again")
    exported_from = checks_record(folder / ONNX_DIR)["weights_sha256"]
    if (folder / WEIGHTS).is_file() and exported_from != weights_digest(folder):
        raise UserError(f"{folder / ONNX_DIR} was exported from other weights than {folder / WEIGHTS}: "
                        f"run python export.py onnx {folder} again")
    return path


def checks_record(onnx_dir: Path) -> dict:
    """What an `onnx/` folder's `checks.json` records (the weights it came from, the length)."""
    return json.loads((onnx_dir / CHECKS).read_text())


def run_config(folder: Path) -> dict | None:
    """The resolved config of the run whose export `folder` is (hf_model/ or hf_model/onnx/)."""
    for run in (folder.parent, folder.parent.parent):
        if (run / "config.yaml").is_file() and (run / "hparams.yaml").is_file():
            return yaml.safe_load((run / "config.yaml").read_text())
    return None


def record_max_length(folder: Path, max_length: int) -> None:
    """The trained tokens per text written into the folder's `tokenizer_config.json` as its
    `model_max_length`, so that the folder carries it wherever it goes: a tokenizer, and so
    `transformers.pipeline`, cut texts there, as this project's runtimes do."""
    path = folder / TOKENIZER_CONFIG
    config = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps({**config, "model_max_length": int(max_length)}, indent=2) + "\n")


def model_limit(folder: Path) -> int:
    """The most tokens a text may have: the model's positions."""
    return int(model_config(folder).get("max_position_embeddings", 512))


def trained_max_length(folder: Path, tokenizer) -> tuple[int, str]:
    """(tokens per text, where that number comes from): the run's `data.max_length` where the
    folder is in its run, else what the export recorded (`checks.json`, the tokenizer's
    `model_max_length`), within the model's positions."""
    config = run_config(folder)
    length = config and config.get("data", {}).get("init_args", {}).get("max_length")
    if length:
        return int(length), "the run's data.max_length"
    for onnx_dir in (folder, folder / ONNX_DIR):
        if (onnx_dir / CHECKS).is_file():
            return int(checks_record(onnx_dir)["max_length"]), f"the max_length of {CHECKS}"
    return min(int(tokenizer.model_max_length), model_limit(folder)), "the tokenizer's model_max_length"
