"""predict.py on the PyTorch runtime: rows in input order with their texts and the model's own
probabilities, the input read a chunk at a time, a stopped prediction leaving whole rows that
--resume finishes as an uninterrupted run would have."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from transformers import AutoTokenizer

from core.errors import UserError
from deploy import cpu_paths
from deploy.output import record_path
from deploy.prediction import Stopped, predict
from deploy.runtimes import TorchRuntime
from deploy.streaming import Predictor
from tests.deploy_helpers import (
    LABELS,
    one_torch_thread,  # noqa: F401 (autouse)
    probabilities,
    read_rows,
    reference_probs,
    texts,
    write_jsonl,
)
from tests.helpers import ROOT

MULTILINE = 'a text over\ntwo lines, "quoted", with a comma'


@pytest.fixture(autouse=True)
def one_cpu_path(monkeypatch):
    """Every run on PyTorch's own fp32 path: two runs that timed the paths apart could take two
    (their logits differ by float noise), and these tests compare runs byte for byte."""
    monkeypatch.setattr(cpu_paths, "candidates", lambda: [cpu_paths.PLAIN])


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_rows_are_in_input_order_with_their_texts_and_the_models_probabilities(export, tmp_path, suffix):
    """Batches sort the texts by length; each row must still hold its own text's prediction."""
    items = texts(40)
    out = tmp_path / f"out{suffix}"
    source = str(write_jsonl(tmp_path / "in.jsonl", items))
    predict(str(export), source, str(out), batch_size=4, chunk_size=16)
    rows = read_rows(out)
    expected = reference_probs(export, items)
    assert [row["text"] for row in rows] == items
    np.testing.assert_allclose(probabilities(rows), expected, atol=1e-6)  # 6 decimals written
    clear = np.abs(expected[:, 1] - expected[:, 0]) > 1e-4  # a tie within float noise goes either way
    found = [row["label"] for row, c in zip(rows, clear) if c]
    assert found == [LABELS[i] for i in expected[clear].argmax(1)]
    assert {row["label"] for row in rows} == set(LABELS)  # the labels differ, so their order counts


def test_the_input_is_read_one_chunk_at_a_time(export):
    """Memory holds one chunk: the first chunk's predictions come before the next is read."""
    read = 0

    def endless():
        nonlocal read
        for i in range(1_000_000):
            read += 1
            yield f"the movie {i}"

    predictor = Predictor(TorchRuntime(export, 0, 32), AutoTokenizer.from_pretrained(export), 32,
                          batch_size=4, chunk_size=8)
    stream = predictor.stream(endless())
    first, probs = next(stream)
    assert len(first) == 8 and probs.shape == (8, 2) and read == 8
    next(stream)
    assert read == 16


def stop_at_batch(monkeypatch, number: int) -> None:
    """Ctrl-C while the model computes its `number`th batch."""
    calls, original = 0, TorchRuntime.logits

    def logits(self, batch):
        nonlocal calls
        calls += 1
        if calls == number:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(TorchRuntime, "logits", logits)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_stopped_prediction_leaves_whole_rows_and_resume_finishes_it(export, tmp_path, monkeypatch, suffix):
    items = texts(44)
    items[20] = MULTILINE
    source = str(write_jsonl(tmp_path / "in.jsonl", items))
    full, out = tmp_path / f"full{suffix}", tmp_path / f"out{suffix}"
    options = {"batch_size": 4, "chunk_size": 8}
    predict(str(export), source, str(full), **options)
    original = TorchRuntime.logits
    stop_at_batch(monkeypatch, 5)  # the first batch of the third chunk
    with pytest.raises(Stopped) as stopped:
        predict(str(export), source, str(out), **options)
    assert stopped.value.code == 130
    assert [row["text"] for row in read_rows(out)] == items[:16]
    monkeypatch.setattr(TorchRuntime, "logits", original)
    with pytest.raises(UserError, match="exists: --resume goes on with it, --overwrite replaces it"):
        predict(str(export), source, str(out), **options)
    predict(str(export), source, str(out), resume=True, **options)
    assert out.read_bytes() == full.read_bytes()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_row_torn_by_a_kill_is_cut_off_and_predicted_again(export, tmp_path, suffix):
    """A kill inside a write leaves part of a row (here inside the two-line text): resuming keeps
    the whole rows before it and predicts the rest."""
    items = texts(30)
    items[13] = MULTILINE
    source = str(write_jsonl(tmp_path / "in.jsonl", items))
    out = tmp_path / f"out{suffix}"
    predict(str(export), source, str(out), batch_size=4, chunk_size=8)
    full = out.read_bytes()
    out.write_bytes(full[:full.index(b"two lines") + 3])
    assert len(read_rows_whole(out)) == 13
    predict(str(export), source, str(out), resume=True, batch_size=4, chunk_size=8)
    rows = read_rows(out)
    assert [row["text"] for row in rows] == items
    np.testing.assert_allclose(probabilities(rows), reference_probs(export, items), atol=1e-6)


def read_rows_whole(path):
    """The rows the resume keeps: every row before the torn one."""
    from deploy.output import OutputFile

    return list(OutputFile(path, LABELS).written_texts())


def test_an_output_of_other_texts_is_not_resumed(export, tmp_path):
    out = tmp_path / "out.csv"
    predict(str(export), str(write_jsonl(tmp_path / "a.jsonl", texts(12, seed=1))), str(out))
    with pytest.raises(UserError, match=r"row 1 holds another text than row 1 of the input") as err:
        predict(str(export), str(write_jsonl(tmp_path / "b.jsonl", texts(12, seed=2))), str(out), resume=True)
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_sigterm_stops_the_command_between_writes_and_resume_finishes_it(export, tmp_path):
    """A real process, stopped by SIGTERM once its first rows are out."""
    items = texts(5000, seed=5)
    source, out, stderr = write_jsonl(tmp_path / "in.jsonl", items), tmp_path / "out.csv", tmp_path / "stderr"
    with open(stderr, "w") as errors:  # a fresh interpreter: a child forked from this suite's process
        # inherits the thread pools earlier tests started (tokenizers, ONNX Runtime) and can hang
        process = subprocess.Popen([sys.executable, str(ROOT / "predict.py"), str(export), str(source),
                                    "--output", str(out), "--chunk_size", "64"], stderr=errors, cwd=ROOT)
        try:
            deadline = time.monotonic() + 180
            while len(read_rows_whole(out) if out.exists() else []) < 64 and time.monotonic() < deadline:
                time.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            assert process.wait(60) == 143
        finally:
            process.kill()
    written = [row["text"] for row in read_rows(out)]
    assert 64 <= len(written) < len(items) and written == items[:len(written)] and len(written) % 64 == 0
    last = stderr.read_text().strip().splitlines()[-1]
    assert last.startswith(f"stopped after {len(written)} of 5,000 texts: {out} holds their predictions")
    predict(str(export), str(source), str(out), resume=True, chunk_size=64)
    assert [row["text"] for row in read_rows(out)] == items


@pytest.mark.slow
def test_a_process_killed_with_sigkill_mid_file_is_resumed_to_the_uninterrupted_output(export, tmp_path):
    """SIGKILL gives no chance to stop between writes: whatever the kill left, --resume keeps the
    whole rows and finishes the file as an uninterrupted run (on the same CPU path) writes it."""
    items = texts(3000, seed=6)
    source, out, full = write_jsonl(tmp_path / "in.jsonl", items), tmp_path / "out.csv", tmp_path / "full.csv"
    command = [sys.executable, str(ROOT / "predict.py"), str(export), str(source), "--chunk_size", "64",
               "--threads", "1"]
    process = subprocess.Popen([*command, "--output", str(out)], stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        deadline = time.monotonic() + 180
        while not written_with_path(out) and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        assert process.wait(60) == -signal.SIGKILL
    finally:
        process.kill()
    assert 64 <= len(read_rows_whole(out)) < len(items)
    path = json.loads(record_path(out).read_text())["path"]
    subprocess.run([*command, "--output", str(out), "--resume", "true"], check=True, cwd=ROOT,
                   stderr=subprocess.DEVNULL)
    assert json.loads(record_path(out).read_text())["path"] == path
    subprocess.run([*command, "--output", str(full)], check=True, cwd=ROOT, stderr=subprocess.DEVNULL)
    if json.loads(record_path(full).read_text())["path"] == path:  # the same path: the same bytes
        assert out.read_bytes() == full.read_bytes()
    assert [row["text"] for row in read_rows(out)] == items
    np.testing.assert_allclose(probabilities(read_rows(out)), probabilities(read_rows(full)), atol=2e-6)


def written_with_path(out) -> bool:
    """Whether `out` holds its first chunk's rows and its record the CPU path they were run on."""
    try:
        return len(read_rows_whole(out)) >= 64 and "path" in json.loads(record_path(out).read_text())
    except (OSError, ValueError):  # not written yet, or a record being written
        return False
