"""predict.py's compiled PyTorch model: the same probabilities as the eager one from one graph for
every batch shape, eager again with one warning where compiling fails, and compiled by default only
for a file large enough to pay the compile back."""

import logging

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from deploy import prediction
from deploy.prediction import predict, text_tokens
from tests.deploy_helpers import (
    one_torch_thread,  # noqa: F401 (autouse)
    probabilities,
    read_rows,
    reference_probs,
    texts,
    write_jsonl,
)

ITEMS = texts(40)


@pytest.fixture(autouse=True)
def cpu_only(monkeypatch):
    """The tests compare with the CPU's reference and test the CPU's default, with or without CUDA."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.slow
def test_a_compiled_model_predicts_what_the_eager_one_does_from_one_graph(export, tmp_path, caplog):
    """Batches of 3 texts of many lengths, the first 3 texts of 3 tokens (a square batch, whose two
    sizes torch would otherwise take for one), the last a batch of 1: one graph serves them all."""
    items = ["good", "dull", "weak", *ITEMS]
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    out = tmp_path / "out.csv"
    with caplog.at_level(logging.WARNING):
        predict(str(export), str(write_jsonl(tmp_path / "in.jsonl", items)), str(out), batch_size=3,
                compile=True)
    assert not caplog.records
    np.testing.assert_allclose(probabilities(read_rows(out)), reference_probs(export, items), atol=1e-6)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
    torch._dynamo.reset()


def failing_compile(model, dynamic):
    def compiled(**inputs):
        raise RuntimeError("InductorError: C++ compile error\nmore lines")
    return compiled


def test_where_compiling_fails_the_model_runs_uncompiled_after_one_warning(export, tmp_path, caplog,
                                                                           monkeypatch):
    monkeypatch.setattr(torch, "compile", failing_compile)
    out = tmp_path / "out.csv"
    with caplog.at_level(logging.WARNING):
        predict(str(export), str(write_jsonl(tmp_path / "in.jsonl", ITEMS)), str(out), batch_size=4,
                compile=True)
    assert [r.getMessage() for r in caplog.records] == [
        "torch.compile failed, so the model runs uncompiled: InductorError: C++ compile error"]
    np.testing.assert_allclose(probabilities(read_rows(out)), reference_probs(export, ITEMS), atol=1e-6)


@pytest.mark.parametrize("above, compiled", [(0, True), (10**9, False)])
def test_by_default_only_a_file_of_more_tokens_than_the_threshold_is_compiled(
        export, tmp_path, monkeypatch, above, compiled):
    calls = []
    monkeypatch.setattr(torch, "compile", lambda model, dynamic: calls.append(model) or model)
    monkeypatch.setattr(prediction, "COMPILE_ABOVE", above)
    predict(str(export), str(write_jsonl(tmp_path / "in.jsonl", ITEMS)), str(tmp_path / "out.csv"))
    assert bool(calls) == compiled


def test_the_token_estimate_follows_the_tokenizer_and_stops_at_max_length(export):
    tokenizer = AutoTokenizer.from_pretrained(export)
    for text in ITEMS:
        tokens = len(tokenizer(text, truncation=True, max_length=128)["input_ids"])
        assert tokens / 2 <= text_tokens(text, 128) <= 2 * tokens
    assert text_tokens("word " * 500, 128) == 128


def test_a_resume_compiles_only_where_the_rows_left_pay_the_compile_back(export, tmp_path, monkeypatch):
    """The whole file is over the threshold, its second half is not: the run compiles, its resume
    after the first half does not."""
    calls = []
    monkeypatch.setattr(torch, "compile", lambda model, dynamic: calls.append(model) or model)
    monkeypatch.setattr(prediction, "COMPILE_ABOVE", 0.75 * sum(text_tokens(t, 128) for t in ITEMS))
    source, out = str(write_jsonl(tmp_path / "in.jsonl", ITEMS)), tmp_path / "out.csv"
    predict(str(export), source, str(out))
    assert len(calls) == 1
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:1 + len(ITEMS) // 2]))  # the header and the first half
    predict(str(export), source, str(out), resume=True)
    assert len(calls) == 1 and len(read_rows(out)) == len(ITEMS)
