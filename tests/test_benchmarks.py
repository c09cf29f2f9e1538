"""The benchmark scripts run end to end on the CPU and measure what they claim."""

import json
import subprocess
import sys

import pytest

from datamodules.synthetic import generate
from tests.helpers import ROOT


@pytest.fixture
def reviews(tmp_path):
    """Generated reviews of varied length as local split files."""
    folder = tmp_path / "reviews"
    folder.mkdir()
    for name, n, seed in (("train", 120, 0), ("test", 20, 1)):
        with open(folder / f"{name}.jsonl", "w") as f:
            f.writelines(json.dumps(row) + "\n" for row in generate(n, seed))
    return folder


def run_script(name: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def read_report(path) -> dict:
    """A benchmark's JSON, which always says what it was measured on and with which versions."""
    report = json.loads(path.read_text())
    assert {"device", "torch", "transformers", "lightning"} <= set(report), sorted(report)
    return report


@pytest.mark.slow
def test_throughput_trains_and_scores_every_loop_on_the_same_reviews(reviews, tmp_path):
    out = tmp_path / "throughput.json"
    stdout = run_script("throughput.py", "--arch", "tiny", "--data_dir", str(reviews),
                        "--max_length", "64", "--batch_size", "8", "--packed_length_multiple", "8",
                        "--setups", "project,project_padded,hf_trainer,naive", "--num_workers", "0",
                        "--cache_dir", str(tmp_path / "cache"), "--out", str(out))
    assert "vs HF Trainer" in stdout
    report = read_report(out)
    rows = {r["setup"]: r for r in report["results"]}
    assert set(rows) == {"project", "project_padded", "hf_trainer", "naive"}
    train_size = 108  # 120 minus the 10% validation split
    for row in rows.values():
        assert row["samples"] == train_size
        assert row["samples_per_s"] > 0 and len(row["epoch_s"]) == 1
        assert row["seconds"] >= row["epoch_s"][0]
        assert 0.0 <= row["test_accuracy"] <= 1.0
    # the same reviews, however they were batched and padded
    real = {name: row["real_tokens"] for name, row in rows.items()}
    assert len(set(real.values())) == 1, real
    padded = [rows[name]["padded_tokens"] for name in ("project", "hf_trainer", "naive")]
    assert padded[0] < padded[1] < padded[2] == train_size * 64
    assert rows["project_padded"]["padded_tokens"] > padded[0]


@pytest.mark.slow
def test_loop_overhead_times_both_loops(tmp_path):
    out = tmp_path / "overhead.json"
    stdout = run_script("loop_overhead.py", "--steps", "6", "--warmup", "2", "--repeats", "1",
                        "--out", str(out))
    assert "overhead:" in stdout
    report = read_report(out)
    assert report["plain_ms"] > 0 and report["project_ms"] > 0
    assert report["overhead"] == pytest.approx(report["project_ms"] / report["plain_ms"] - 1)


@pytest.mark.slow
def test_mlm_head_benchmark_checks_both_losses_agree_then_times_them(tmp_path):
    out = tmp_path / "mlm_head.json"
    stdout = run_script("mlm_head.py", "--arch", "tiny", "--steps", "2", "--out", str(out))
    assert "masked positions only" in stdout
    report = read_report(out)
    assert len(report["runs_s"]["full"]) == len(report["runs_s"]["masked_only"]) == 2


@pytest.mark.slow
def test_tokenize_imdb_times_the_first_run_and_the_cached_reload(reviews, tmp_path):
    out = tmp_path / "tokenize.json"
    stdout = run_script("tokenize_imdb.py", "--data_dir", str(reviews), "--max_length", "64",
                        "--out", str(out))
    assert "load the cache" in stdout
    report = read_report(out)
    assert report["reviews"] == 140 and report["tokens"] > 0  # train (with validation) and test
    assert {"first_run_s", "cached_reload_s", "reviews_per_s"} <= set(report)
