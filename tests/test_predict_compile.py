"""predict.py's compiled PyTorch model: the same probabilities as the eager one from one graph for
every batch shape, eager again with one warning where compiling fails, and compiled by default only
for a file large enough to pay the compile back."""

import logging

import numpy as np
import pytest
import torch

from deploy import prediction
from deploy.prediction import predict
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
