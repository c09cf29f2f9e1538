"""benchmarks/inference.py --quick runs every step end to end (fine-tuning with the ONNX plug-in,
the pipeline and predict.py on every runtime, each a process of its own, a student distilled from
the model) and reports what it claims: one row per runtime, process time beside prediction time."""

import json

import pytest

from datamodules.synthetic import generate
from tests.test_benchmarks import read_report, run_script  # noqa: F401 (the fixture, found by its name)

pytest.importorskip("onnxruntime", reason="the ONNX extra is not installed: pip install -e '.[onnx]'")


@pytest.mark.slow
def test_the_inference_benchmark_measures_every_runtime_on_the_same_texts(tiny_bert, tmp_path, request):
    data = tmp_path / "data" / "imdb"
    data.mkdir(parents=True)
    for name, n, seed in (("train", 200, 0), ("test", 80, 1)):
        (data / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in generate(n, seed)))
    out = tmp_path / "inference.json"
    run = request.getfixturevalue("run_script")
    stdout = run("inference.py", "--quick", "--students", "imdb",
                 "--backbone", tiny_bert,
                 "--shared_data", str(tmp_path / "data"), "--out", str(out))
    report = read_report(out)
    found = report["cases"]["imdb 64 @64"]
    assert found["texts"] == 64 and found["threads"] == 2 and report["cpu"]
    rows = found["rows"]
    assert list(rows)[:1] == ["pipeline"] and list(rows)[-6:] == [
        "torch", "torch-compiled", "onnx", "onnx-int8", "student-torch", "student-onnx-int8"]
    for row in ("torch", "torch-compiled", "onnx"):
        assert rows[row]["same_label_as_pipeline"] == 1.0  # the same predictions as the pipeline
        assert rows[row]["max_prob_diff_to_pipeline"] < 1e-5
    assert rows["torch-compiled"]["path"] == "compiled" and rows["torch"]["path"].startswith(("fp32", "bf16"))
    assert rows["onnx-int8"]["size_mb"] < rows["onnx"]["size_mb"]
    for row in rows.values():  # a process's time holds its prediction's, and more (imports, loading)
        assert row["process_s"] > row["predict_s"] + 0.5
        assert row["texts_per_s_process"] == pytest.approx(64 / row["process_s"])
    assert rows["student-torch"]["size_mb"] < rows["torch"]["size_mb"]  # 1 of the tiny model's 2 layers
    assert "| predict.py, ONNX Runtime int8 |" in stdout and "points of accuracy lost (target <= 1)" in stdout
