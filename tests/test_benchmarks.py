"""The benchmark scripts run end to end on the CPU and measure what they claim."""

import json
import runpy
import sys

import pytest
import torch

from datamodules.synthetic import generate
from lightning_modules.attention_kernels import layout
from tests.helpers import ROOT


@pytest.fixture
def reviews(tmp_path):
    """Generated reviews of varied length as local split files, each opened by "thumbs up." or
    "thumbs down." as its label says: words found nowhere else, so that any loop learns them in a
    few steps and a test accuracy near chance means the scoring is wrong."""
    folder = tmp_path / "reviews"
    folder.mkdir()
    for name, n, seed in (("train", 120, 0), ("test", 20, 1)):
        with open(folder / f"{name}.jsonl", "w") as f:
            f.writelines(json.dumps({"text": f"thumbs {('down', 'up')[row['label']]}. {row['text']}",
                                     "label": row["label"]}) + "\n" for row in generate(n, seed))
    return folder


@pytest.fixture
def run_script(monkeypatch, capsys):
    """Runs a benchmark script as `python benchmarks/<name> <args>` would, in this process (a
    fresh interpreter would import torch and Lightning again); returns what it printed."""

    def run(name: str, *args: str) -> str:
        monkeypatch.setattr(sys, "argv", [name, *args])
        try:
            runpy.run_path(str(ROOT / "benchmarks" / name), run_name="__main__")
        except SystemExit as stop:
            assert stop.code in (None, 0), (stop.code, capsys.readouterr().out[-3000:])
        return capsys.readouterr().out

    return run


def read_report(path) -> dict:
    """A benchmark's JSON, which always says what it was measured on and with which versions."""
    report = json.loads(path.read_text())
    assert {"device", "torch", "transformers", "lightning"} <= set(report), sorted(report)
    return report


EPOCHS = 2  # enough for every loop to learn the first word (one is not: all score 0.5)


@pytest.mark.slow
def test_throughput_trains_and_scores_every_loop_on_the_same_reviews(reviews, tmp_path, run_script):
    out = tmp_path / "throughput.json"
    stdout = run_script("throughput.py", "--arch", "tiny", "--data_dir", str(reviews),
                        "--max_length", "64", "--batch_size", "8", "--packed_length_multiple", "8",
                        "--epochs", str(EPOCHS), "--learning_rate", "1e-3",
                        "--setups", "project,project_padded,hf_trainer,hf_trainer_bf16,naive",
                        "--num_workers", "0", "--cache_dir", str(tmp_path / "cache"), "--out", str(out))
    assert "vs HF Trainer's faster" in stdout
    report = read_report(out)
    rows = {r["setup"]: r for r in report["results"]}
    assert set(rows) == {"project", "project_padded", "hf_trainer", "hf_trainer_bf16", "naive"}
    # HF Trainer in both its settings; the project in what train.py picks on this CPU
    assert (rows["hf_trainer"]["precision"], rows["hf_trainer_bf16"]["precision"]) == ("32", "bf16-mixed")
    assert rows["project"]["precision"] in ("32", "bf16-mixed")
    train_size = 108  # 120 minus the 10% validation split
    for row in rows.values():
        assert row["samples"] == EPOCHS * train_size
        assert row["samples_per_s"] > 0 and len(row["epoch_s"]) == EPOCHS
        assert row["seconds"] >= sum(row["epoch_s"])
        # a share of the 20 test reviews, and far above chance: the first word gives the label away
        assert 20 * row["test_accuracy"] == pytest.approx(round(20 * row["test_accuracy"])), row
        assert row["test_accuracy"] >= 0.9, rows
    # the same reviews, however they were batched and padded
    real = {name: row["real_tokens"] for name, row in rows.items()}
    assert len(set(real.values())) == 1, real
    padded = [rows[name]["padded_tokens"] for name in ("project", "hf_trainer", "naive")]
    assert padded[0] < padded[1] < padded[2] == EPOCHS * train_size * 64
    assert rows["project_padded"]["padded_tokens"] > padded[0]


@pytest.mark.slow
def test_attention_layouts_times_both_exact_layouts_on_real_text_lengths(shared_data, tmp_path, run_script):
    out = tmp_path / "layouts.json"
    stdout = run_script("attention_layouts.py", "--data_dir", str(shared_data), "--texts", "16",
                        "--batches", "1", "--batch_size", "4", "--repeats", "1", "--out", str(out))
    assert "the rule picks the faster layout" in stdout
    report = read_report(out)
    assert [r["data"] for r in report["results"]] == ["AG News at 128", "IMDB at 128", "IMDB at 512"]
    for row in report["results"]:
        assert len(row["lengths"]) == 4 and max(row["lengths"]) <= int(row["data"].split()[-1])
        assert row["chosen"] == layout(row["lengths"]) and row["padded view ms"] > 0 < row["per text ms"]


@pytest.mark.slow
def test_loop_overhead_times_both_loops(tmp_path, run_script):
    out = tmp_path / "overhead.json"
    stdout = run_script("loop_overhead.py", "--steps", "6", "--warmup", "2", "--repeats", "1",
                        "--out", str(out))
    assert "overhead:" in stdout
    report = read_report(out)
    assert report["plain_ms"] > 0 and report["project_ms"] > 0
    assert report["overhead"] == pytest.approx(report["project_ms"] / report["plain_ms"] - 1)


@pytest.mark.slow
def test_mlm_head_benchmark_checks_both_losses_agree_then_times_them(tmp_path, run_script):
    out = tmp_path / "mlm_head.json"
    stdout = run_script("mlm_head.py", "--arch", "tiny", "--steps", "2", "--out", str(out))
    assert "masked positions only" in stdout
    report = read_report(out)
    assert len(report["runs_s"]["full"]) == len(report["runs_s"]["masked_only"]) == 2


@pytest.mark.slow
def test_tokenize_imdb_times_the_first_run_and_the_cached_reload(reviews, tmp_path, run_script):
    out = tmp_path / "tokenize.json"
    stdout = run_script("tokenize_imdb.py", "--data_dir", str(reviews), "--max_length", "64",
                        "--out", str(out))
    assert "load the cache" in stdout
    report = read_report(out)
    assert report["reviews"] == 140 and report["tokens"] > 0  # train (with validation) and test
    assert {"first_run_s", "cached_reload_s", "reviews_per_s"} <= set(report)


@pytest.mark.slow
def test_gpu_suite_dry_run_writes_every_step_and_an_honest_summary_into_one_folder(reviews, tmp_path,
                                                                                   run_script):
    out = tmp_path / "gpu"
    stdout = run_script("gpu_suite.py", "--dry-run", "--data_dir", str(reviews), "--out", str(out))
    steps = ["pytest", "fit-16-mixed", "fit-bf16-mixed", "throughput-distilbert", "throughput-bert-base"]
    ran = ["fit-16-mixed", "throughput-distilbert"]  # one of each kind; the others repeat them
    assert sorted(p.name for p in out.iterdir()) == sorted([*(f"{s}.txt" for s in steps),
                                                            "summary.json", "summary.md"])
    summary = json.loads((out / "summary.json").read_text())
    rows = {row["step"]: row for row in summary["steps"]}
    assert list(rows) == steps and summary["dry_run"]
    # the GPU tests pass where CUDA is; elsewhere every one of them skips, and the summary says so
    cuda = torch.cuda.is_available()
    gpu_tests = rows["pytest"]["status"], sorted(rows["pytest"]["counts"])
    assert gpu_tests == (("passed", ["passed"]) if cuda else ("skipped: no CUDA", ["skipped"])), gpu_tests
    for name in ran:
        assert rows[name]["status"] == "passed", (name, rows[name]["last_lines"])
        assert 0 < rows[name]["seconds"] <= rows[name]["limit_s"]
    assert rows["fit-bf16-mixed"]["status"] == "skipped: the dry run runs fit-16-mixed only"
    assert rows["throughput-bert-base"]["status"] == "skipped: the dry run runs throughput-distilbert only"
    fit = rows["fit-16-mixed"]
    assert fit["precision"] == ("16-mixed" if cuda else "32-true")
    assert 0 <= fit["test_acc"] <= 1 and len(fit["epoch_s"]) == 1
    report = rows["throughput-distilbert"]["report"]
    assert report["arch"] == "tiny-distilbert"
    assert [r["setup"] for r in report["results"]] == ["project", "hf_trainer"]
    assert all(r["samples"] == 64 for r in report["results"])  # the dry run's 64 training reviews
    for name in steps:  # each log opens with the command it ran
        assert (out / f"{name}.txt").read_text().startswith(f"$ {sys.executable} ")
    table = (out / "summary.md").read_text()
    assert all(f"| {name} | {rows[name]['status']} |" in table for name in steps), table
    assert table in stdout


def test_the_distillation_tables_pair_runs_on_the_same_texts():
    """Per run, a recipe right on 10 more of 100 texts than labels only, whose teacher is right on
    20 more: +10 points, half the gap, intervals clear of 0; the unlabelled texts against the
    equal-steps control: +5; the same predictions as the recipe before: exactly 0."""
    from benchmarks.distill_stats import summary

    labels = [i % 2 for i in range(100)]

    def predictions(right: int) -> str:
        return "".join(str(y if i < right else 1 - y) for i, y in enumerate(labels))

    teachers = {"1": {"predictions": predictions(80)}, "2": {"predictions": predictions(82)}}
    runs = [{"student": "s", "recipe": recipe, "replicate": f"{t}-1", "teacher": t, "fit_s": 1.0,
             "teacher_pass_s": None, "steps": 3, "predictions": predictions(right + 2 * (t == 2))}
            for t in (1, 2) for recipe, right in (("labels", 60), ("control", 65), ("logits", 70),
                                                  ("unlabelled", 70), ("tinybert", 70))]
    rows = {row["recipe"]: row for row in summary(runs, teachers, labels)}
    assert rows["labels"]["accuracy"][0] == pytest.approx(0.61)
    gain, low, high = rows["logits"]["gain"]
    assert gain == pytest.approx(0.10) and 0 < low <= gain <= high
    assert rows["logits"]["gap_recovered"][0] == pytest.approx(0.5)
    assert rows["unlabelled"]["added_to"] == "control"
    assert rows["unlabelled"]["added"][0] == pytest.approx(0.05)
    assert rows["tinybert"]["added_to"] == "unlabelled" and rows["tinybert"]["added"] == (0.0, 0.0, 0.0)
