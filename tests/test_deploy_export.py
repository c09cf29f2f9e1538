"""The ONNX export of a tiny classifier, with a real ONNX Runtime session: PyTorch's logits on
texts of several lengths and batch sizes (dynamic axes), the int8 file written and measured, the
check that refuses a wrong graph, the same predictions from every runtime, and what it refuses."""

import hashlib
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from core.errors import UserError
from deploy.card import BEGIN, section
from deploy.checks import INT8_TOLERANCE, accuracies, check_logits, int8_drop, spread
from deploy.classifier import load
from deploy.layout import onnx_file
from deploy.onnx_export import export_fp32, write_onnx
from deploy.prediction import predict
from deploy.runtimes import OrtRuntime, TorchRuntime
from tests.deploy_helpers import (
    one_torch_thread,  # noqa: F401 (autouse)
    other_threads_around,
    read_rows,
    texts,
    tiny_classifier,
    write_jsonl,
)

ort = pytest.importorskip("onnxruntime", reason="the ONNX extra is not installed: pip install -e '.[onnx]'")
pytest.importorskip("onnxscript", reason="the ONNX extra is not installed: pip install -e '.[onnx]'")


@pytest.fixture(scope="module")
def exported(tiny_bert, tmp_path_factory):
    """(export folder, what checks.json records, the texts and labels it was measured on)."""
    folder = tiny_classifier(tiny_bert, tmp_path_factory.mktemp("bert") / "hf_model")
    items = texts(60, seed=3)
    labels = [int(i % 3 == 0) for i in range(len(items))]
    return folder, write_onnx(folder, items, labels, max_length=128, max_test_texts=40), items, labels


def torch_logits(folder, batch: list[str]) -> np.ndarray:
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    inputs = AutoTokenizer.from_pretrained(folder)(batch, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return model(**inputs).logits.numpy()


def test_onnx_runtime_gives_pytorchs_logits_on_texts_of_several_lengths_and_batch_sizes(exported):
    folder, found, items, _ = exported
    session = ort.InferenceSession(str(folder / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    tokenizer = AutoTokenizer.from_pretrained(folder / "onnx")  # the tokenizer shipped beside it
    names = [i.name for i in session.get_inputs()]
    assert all(isinstance(dim, str) for i in session.get_inputs() for dim in i.shape)  # dynamic axes
    graph = onnx.load(folder / "onnx" / "model.onnx")
    assert graph.opset_import[0].version == 23 and "Attention" in {n.op_type for n in graph.graph.node}
    for batch in (items[:1], items[1:4], sorted(items, key=len)[-7:], ["bad"]):
        inputs = tokenizer(batch, padding=True, return_tensors="np")
        logits = session.run(["logits"], {name: inputs[name] for name in names})[0]
        np.testing.assert_allclose(logits, torch_logits(folder, batch), atol=1e-5)


def test_a_model_without_token_type_ids_exports_with_the_inputs_it_takes(tiny_distilbert, tmp_path):
    folder = tiny_classifier(tiny_distilbert, tmp_path / "hf_model")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    export_fp32(folder, tmp_path / "model.onnx", tokenizer)
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]
    batch = texts(5, seed=4)
    inputs = tokenizer(batch, padding=True, return_tensors="np")
    logits = session.run(["logits"], {name: inputs[name] for name in ("input_ids", "attention_mask")})
    np.testing.assert_allclose(logits[0], torch_logits(folder, batch), atol=1e-5)


def test_the_int8_file_is_written_and_its_accuracy_measured(exported, tmp_path):
    """The accuracies recorded are those of what predict.py writes with each runtime."""
    folder, found, items, labels = exported
    sizes = found["sizes"]
    for name in ("model.safetensors", "onnx/model.onnx", "onnx/model.int8.onnx"):
        assert sizes[name] == (folder / name).stat().st_size
    assert found["weights_sha256"] == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert sizes["onnx/model.int8.onnx"] < 0.6 * sizes["onnx/model.onnx"]
    assert ort.InferenceSession(str(folder / "onnx" / "model.int8.onnx")).get_outputs()[0].name == "logits"
    items, labels = spread(items, labels, 40)  # the 40 of 60 texts measured, evenly spaced
    source = str(write_jsonl(tmp_path / "in.jsonl", items))
    predicted = {}
    for runtime in ("torch", "onnx", "onnx-int8"):
        predict(str(folder), source, str(tmp_path / f"{runtime}.csv"), runtime=runtime)
        rows = read_rows(tmp_path / f"{runtime}.csv")
        predicted[runtime] = np.array([["neg", "pos"].index(row["label"]) for row in rows])
        assert found["test"]["accuracy"][runtime] == pytest.approx(np.mean(predicted[runtime] == labels))
    assert found["test"]["accuracy"]["onnx"] == found["test"]["accuracy"]["torch"]
    assert found["test"]["texts"] == len(items)
    agreement = np.mean(predicted["onnx-int8"] == predicted["torch"])
    assert found["test"]["int8_agreement"] == pytest.approx(agreement)


class Shifted:
    """A runtime whose logits are another's moved by `shift`."""

    def __init__(self, runtime, shift: float):
        self.runtime, self.shift = runtime, shift

    def logits(self, batch):
        return self.runtime.logits(batch) + self.shift


def test_the_check_passes_float_noise_and_refuses_a_wrong_graph(exported):
    folder, _, items, _ = exported
    tokenizer = AutoTokenizer.from_pretrained(folder)
    reference = TorchRuntime(folder, 0, 128)
    assert check_logits(reference, Shifted(reference, 3e-7), tokenizer, items, 128)["texts"] == 8
    with pytest.raises(RuntimeError, match="logits differ from PyTorch's by 1.00e-03"):
        check_logits(reference, Shifted(reference, 1e-3), tokenizer, items, 128)


def test_an_int8_drop_past_the_limit_warns_once(caplog):
    assert int8_drop({"torch": 0.90, "onnx-int8": 0.895}, 1.0) == pytest.approx(0.5)
    assert int8_drop({"torch": 0.54, "onnx-int8": 0.53}, 1.0) == 1.0  # exactly the limit: no warning
    assert not caplog.records
    assert int8_drop({"torch": 0.90, "onnx-int8": 0.885}, 1.0) == pytest.approx(1.5)
    assert [r.getMessage() for r in caplog.records] == [
        "int8 test accuracy 0.8850 is 1.50 points below PyTorch's 0.9000 (more than max_int8_drop 1): "
        "model.int8.onnx is written all the same; ship model.onnx where those points matter"]


def test_every_runtime_predicts_the_same_file_alike(exported, tmp_path):
    folder, _, items, _ = exported
    source = str(write_jsonl(tmp_path / "in.jsonl", items))
    rows = {}
    for runtime in ("torch", "onnx", "onnx-int8"):
        predict(str(folder), source, str(tmp_path / f"{runtime}.csv"), runtime=runtime, batch_size=8)
        rows[runtime] = read_rows(tmp_path / f"{runtime}.csv")
    predict(str(folder / "onnx"), source, str(tmp_path / "alone.csv"), runtime="onnx-int8", batch_size=8)
    assert read_rows(tmp_path / "alone.csv") == rows["onnx-int8"]  # the onnx/ folder ships alone
    probs = {k: np.array([[float(r["prob_neg"]), float(r["prob_pos"])] for r in v]) for k, v in rows.items()}
    assert [r["text"] for r in rows["onnx-int8"]] == [r["text"] for r in rows["torch"]] == items
    np.testing.assert_allclose(probs["onnx"], probs["torch"], atol=2e-6)


def test_int8_keeps_the_head_in_fp32_and_its_logits_within_the_stated_bound(exported):
    """The pooler and classifier weights stay fp32; the encoder's MatMul weights get a scale per
    output channel, the embedding tables one per tensor (as docs/deploy.md says); int8 logits are
    checked against fp32's when written, and stay within that bound on every test text."""
    folder, found, items, _ = exported
    graph = onnx.load(folder / "onnx" / "model.int8.onnx").graph
    weights = {w.name: w for w in graph.initializer}
    head = [name for name in weights if "classifier" in name or "pooler" in name]
    assert head and all(weights[name].data_type == onnx.TensorProto.FLOAT for name in head)
    quantized = [name.removesuffix("_quantized") for name in weights if name.endswith("_quantized")]
    assert not [name for name in quantized if "classifier" in name or "pooler" in name]
    scales = {name: list(weights[f"{name}_scale"].dims) for name in quantized}
    embeddings = [name for name in quantized if "embeddings" in name]
    assert embeddings and all(scales[name] == [] for name in embeddings)
    matmuls = [name for name in quantized if name not in embeddings]
    assert len(matmuls) >= 12 and all(len(scales[name]) == 1 and scales[name][0] > 1 for name in matmuls)
    assert found["int8_check"]["texts"] == 8
    tokenizer = AutoTokenizer.from_pretrained(folder / "onnx")
    inputs = dict(tokenizer(items, padding=True, return_tensors="np"))
    fp32, int8 = (session.run(["logits"], {i.name: inputs[i.name] for i in session.get_inputs()})[0]
                  for session in (ort.InferenceSession(str(folder / "onnx" / name))
                                  for name in ("model.onnx", "model.int8.onnx")))
    assert 1e-4 < np.abs(int8 - fp32).max() <= INT8_TOLERANCE * max(1.0, np.abs(fp32).max())


def test_a_wrong_int8_file_is_refused_when_written(exported):
    folder, _, items, _ = exported
    tokenizer = AutoTokenizer.from_pretrained(folder)
    fp32 = OrtRuntime(folder / "onnx" / "model.onnx", 0, 1)
    scale = max(1.0, float(np.abs(fp32.logits(tokenizer(items[:8])["input_ids"])).max()))
    with pytest.raises(RuntimeError, match="int8 logits differ from fp32's by"):
        check_logits(fp32, Shifted(fp32, 2 * INT8_TOLERANCE * scale), tokenizer, items, 128, INT8_TOLERANCE,
                     "int8", "fp32's")


def test_the_measurement_is_bounded_evenly_through_the_split_with_a_progress_bar(exported, capsys):
    """At most max_test_texts (40 of the fixture's 60), spread through a split sorted by label."""
    folder, found, items, labels = exported
    assert found["test"]["texts"] == 40 and found["test"]["split_texts"] == 60
    picked, picked_labels = spread(list(range(60)), [0] * 30 + [1] * 30, 40)
    assert len(picked) == 40 and picked == sorted(set(picked)) and picked[0] == 0 and picked[-1] >= 58
    assert picked_labels.count(0) == picked_labels.count(1) == 20
    assert "On 40 of the 60 test texts (evenly spaced)" in section(folder)
    reference = TorchRuntime(folder, 0, 128, path="fp32 (MKL)")
    accuracies(dict.fromkeys(("torch", "onnx", "onnx-int8"), reference),
               AutoTokenizer.from_pretrained(folder), 128, items[:8], labels[:8], 1.0)
    assert "measuring the exports: 100%" in capsys.readouterr().err


def test_threads_set_onnx_runtimes_threads(exported):
    other_threads_around()
    session = load(exported[0], runtime="onnx", threads=1).runtime.session
    assert session.get_session_options().intra_op_num_threads == 1
    assert os.environ["RAYON_NUM_THREADS"] == "1"


def test_onnx_runtime_takes_omp_num_threads_where_no_threads_are_given(exported):
    """ONNX Runtime reads no environment variable: its session is given the number. one_torch_thread
    sets OMP_NUM_THREADS=1; a session that ignored it would take every core."""
    assert os.environ["OMP_NUM_THREADS"] == "1"
    for session in (load(exported[0], runtime="onnx").runtime.session,
                    OrtRuntime(onnx_file(exported[0], "onnx"), 0, None).session):
        assert session.get_session_options().intra_op_num_threads == 1


def test_what_cannot_be_exported_or_run_is_refused_in_one_line(tiny_bert, exported, tmp_path, monkeypatch):
    folder, _, items, labels = exported
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    for where, message in ((tiny_bert, "is a masked language model (BertForMaskedLM): deployment covers "
                                       "text classifiers; fine-tune it on labelled text first"),
                           (adapter, f"holds a LoRA adapter only; export or predict its run's hf_model/ "
                                     f"({tmp_path / 'hf_model'})")):
        with pytest.raises(UserError) as err:
            write_onnx(Path(where), items, labels, 128)
        assert message in str(err.value) and "\n" not in str(err.value)
    stale = shutil.copytree(folder, tmp_path / "re-exported")
    model = AutoModelForSequenceClassification.from_pretrained(stale)
    with torch.no_grad():
        model.classifier.bias.add_(1.0)
    model.save_pretrained(stale)  # a later export of the run over hf_model/, its onnx/ left behind
    assert section(folder).startswith(BEGIN) and section(stale) == ""
    source = str(write_jsonl(tmp_path / "in.jsonl", items))
    with pytest.raises(UserError, match="onnx was exported from other weights than .*: run python export.py"):
        predict(str(stale), source, str(tmp_path / "o.csv"), runtime="onnx")
    (stale / "onnx" / "checks.json").unlink()  # an export stopped before its checks were written
    with pytest.raises(UserError, match="onnx has no checks.json: its export did not finish"):
        predict(str(stale), source, str(tmp_path / "o.csv"), runtime="onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(UserError, match=r"ONNX export needs onnxruntime, which is not installed: pip"):
        write_onnx(folder, items, labels, 128)
