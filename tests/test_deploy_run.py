"""ONNXExport in a run: a LoRA run's ONNX file is its merged model (ONNX Runtime gives the trained
adapter's logits), its card shows what was checked and measured, and `export.py onnx` on the same
export rewrites files and section in place; what cannot be exported is refused before training."""

import copy
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, pipeline

from core.errors import UserError
from deploy.card import BEGIN
from deploy.prediction import predict
from export import main as export_main
from lightning_modules.classification import SequenceClassifier
from lightning_modules.masked_lm import MaskedLanguageModel
from plugins.onnx_export import ONNXExport
from tests.deploy_helpers import (
    LABELS,
    one_torch_thread,  # noqa: F401 (autouse)
    probabilities,
    read_rows,
    reference_probs,
    texts,
    write_jsonl,
)
from tests.helpers import CONFIGS, quick_args
from train import main

ort = pytest.importorskip("onnxruntime", reason="the ONNX extra is not installed: pip install -e '.[onnx]'")
pytest.importorskip("onnxscript", reason="the ONNX extra is not installed: pip install -e '.[onnx]'")
ATOL = 1e-5  # float noise is below 1e-7 here
TEXTS = ["a good film", "the plot was dull, but the cast was not weak at all", "bad"]


@pytest.fixture(scope="module")
def lora_run(tiny_distilbert, tmp_path_factory, shared_cache) -> Path:
    """The run folder of a LoRA run with ONNXExport added on the command line."""
    workdir = tmp_path_factory.mktemp("onnx-run")
    lora = str(CONFIGS / "overlays" / "lora.yaml")
    cli = main(quick_args(tiny_distilbert, workdir, shared_cache, "--config", lora, "--model.learning_rate",
                          "1e-2", "--data.batch_size", "8", "--trainer.max_epochs", "2",
                          "--trainer.callbacks+=plugins.onnx_export.ONNXExport",
                          "--trainer.callbacks.max_int8_drop", "5"))
    return Path(cli.trainer.log_dir)


def test_a_lora_run_exports_its_merged_model_to_onnx_and_shows_it_in_the_card(lora_run):
    folder = lora_run / "hf_model"
    best = next((lora_run / "checkpoints").glob("epoch*.ckpt"))
    peft_model = SequenceClassifier.load_from_checkpoint(best, map_location="cpu").model.eval()
    batch = AutoTokenizer.from_pretrained(folder)(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        trained = peft_model(**batch).logits.numpy()
        unmerged = copy.deepcopy(peft_model).unload()  # the trained head, without the LoRA layers
        assert np.abs(unmerged(**batch).logits.numpy() - trained).max() > 10 * ATOL  # the LoRA layers count
    session = ort.InferenceSession(str(folder / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    logits = session.run(["logits"], {name: batch[name].numpy() for name in names})[0]
    np.testing.assert_allclose(logits, trained, atol=ATOL)
    found = json.loads((folder / "onnx" / "checks.json").read_text())
    card = (folder / "README.md").read_text()
    assert card.count(BEGIN) == 1 and card.index("## ONNX") < card.index("## Training procedure")
    accuracy, sizes = found["test"]["accuracy"], found["sizes"]
    for name, runtime, key in (("model.safetensors", "PyTorch", "torch"),
                               ("onnx/model.int8.onnx", "ONNX Runtime, int8", "onnx-int8")):
        assert f"| {name} | {runtime} | {sizes[name] / 1e6:.1f} | {accuracy[key]:.4f} |" in card
    assert (f"On {found['test']['texts']} of the {found['test']['split_texts']} test texts (evenly spaced), "
            "int8 gives PyTorch's label") in card
    assert found["test"]["max_int8_drop"] == 5  # the option given on the command line


def test_the_export_command_rewrites_the_files_and_the_section_in_place(lora_run, tmp_path):
    """On a copy of the run: the same test split (rebuilt from config.yaml), the same accuracies."""
    run = shutil.copytree(lora_run, tmp_path / "run")
    in_run = json.loads((run / "hf_model" / "onnx" / "checks.json").read_text())
    found = export_main(["onnx", str(run / "hf_model"), "--max_int8_drop", "0"])
    card = (run / "hf_model" / "README.md").read_text()
    assert card.count(BEGIN) == 1 and card.count("## ONNX") == 1
    assert found["test"]["accuracy"] == in_run["test"]["accuracy"] and found["test"]["max_int8_drop"] == 0
    for name, size in found["sizes"].items():  # what checks.json records is what the files are
        assert (run / "hf_model" / name).stat().st_size == size
    assert found["max_length"] == 64  # the run's data.max_length, rebuilt from its config.yaml


def test_what_cannot_be_exported_is_refused_before_any_work(tiny_bert, tmp_path):
    trainer = SimpleNamespace(callbacks=[])
    with pytest.raises(UserError, match="ONNXExport covers text classifiers, not MaskedLanguageModel"):
        ONNXExport().setup(trainer, MaskedLanguageModel(tiny_bert), "fit")
    with pytest.raises(UserError, match="keep plugins.export.HFExport in trainer.callbacks, before"):
        callback = ONNXExport()
        ONNXExport.setup(callback, SimpleNamespace(callbacks=[callback]),
                         SequenceClassifier(tiny_bert, ["neg", "pos"]), "fit")
    with pytest.raises(UserError, match="max_int8_drop=-1.0 is out of range"):
        ONNXExport(max_int8_drop=-1.0)
    alone = shutil.copytree(tiny_bert, tmp_path / "folder")
    config = json.loads((alone / "config.json").read_text())
    config.update(architectures=["BertForSequenceClassification"], id2label={"0": "neg", "1": "pos"})
    (alone / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="is not in a run folder"):
        export_main(["onnx", str(alone)])


def test_a_shipped_folder_predicts_at_the_length_it_was_checked_at(lora_run, tmp_path):
    """The run trained at 64 tokens: its onnx/ copied out alone and its hf_model/ moved out of the
    run folder cut texts there too (not at the tokenizer's 128), and so does `pipeline`."""
    folder = lora_run / "hf_model"
    for where in (folder, folder / "onnx"):
        assert json.loads((where / "tokenizer_config.json").read_text())["model_max_length"] == 64
    assert json.loads((folder / "onnx" / "checks.json").read_text())["max_length"] == 64
    items = [" ".join(texts(3, seed=seed)) for seed in range(6)]  # 70 to 128 tokens each
    lengths = [len(ids) for ids in AutoTokenizer.from_pretrained(folder)(items)["input_ids"]]
    assert min(lengths) > 64
    expected = reference_probs(folder, items, max_length=64)
    # the length counts, by far more than the float noise the comparisons below allow
    assert np.abs(reference_probs(folder, items, max_length=128) - expected).max() > 1e-5
    shipped = shutil.copytree(folder / "onnx", tmp_path / "shipped")
    moved = shutil.copytree(folder, tmp_path / "moved" / "hf_model", ignore=shutil.ignore_patterns("onnx"))
    source = str(write_jsonl(tmp_path / "in.jsonl", items))
    for model, runtime in ((moved, "torch"), (shipped, "onnx")):
        found = predict(str(model), source, str(tmp_path / f"{runtime}.csv"), runtime=runtime)
        assert found["cut"] == len(items)
        np.testing.assert_allclose(probabilities(read_rows(tmp_path / f"{runtime}.csv")), expected, atol=2e-6)
    classify = pipeline("text-classification", model=str(moved), device="cpu", top_k=None)
    scores = [{s["label"]: s["score"] for s in text} for text in classify(items, truncation=True)]
    np.testing.assert_allclose([[text[name] for name in LABELS] for text in scores], expected, atol=1e-6)
