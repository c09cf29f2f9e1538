"""What `benchmarks/inference.py` measures on one export, each runtime on the same test texts in this
process: texts per second over the whole file at each thread count, batch-1 latency, file size,
test accuracy, and how close each comes to the predictions of `transformers.pipeline`."""

import csv
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from transformers import pipeline

from core.pretrained import load_tokenizer
from deploy import checks
from deploy.layout import RUNTIME_FILES, WEIGHTS, trained_max_length
from deploy.prediction import compiles, open_runtime, predict, text_tokens
from deploy.streaming import Predictor

# each predict.py row: (--runtime, --compile)
RUNTIMES = {"torch": ("torch", False), "torch-compiled": ("torch", True), "onnx": ("onnx", False),
            "onnx-int8": ("onnx-int8", False)}
PIPELINE_BATCH = 32


def set_threads(threads: int) -> None:
    """PyTorch's threads and the tokenizer's pool, as predict.py's --threads sets them."""
    torch.set_num_threads(threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if threads > 1 else "false"


def pipeline_run(folder: Path, texts: list[str], labels: list[str], max_length: int,
                 threads: int) -> tuple[float, np.ndarray]:
    """(texts per second, probabilities) of `transformers.pipeline` over every text, batch 32."""
    set_threads(threads)
    classify = pipeline("text-classification", model=str(folder), device="cpu", top_k=None)
    started = time.perf_counter()
    found = classify(texts, batch_size=PIPELINE_BATCH, truncation=True, max_length=max_length)
    seconds = time.perf_counter() - started
    scores = [{s["label"]: s["score"] for s in text} for text in found]
    probs = np.array([[text[name] for name in labels] for text in scores])
    return len(texts) / seconds, probs


def predict_run(folder: Path, source: Path, out: Path, row: str, threads: int,
                labels: list[str]) -> tuple[float, np.ndarray]:
    """(texts per second, probabilities) of predict.py over the same texts, file to file; a compiled
    model's texts per second include the compiling."""
    runtime, compile = RUNTIMES[row]
    speed = predict(str(folder), str(source), str(out), runtime=runtime, threads=threads, compile=compile,
                    overwrite=True)["texts_per_second"]
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return speed, np.array([[float(row[f"prob_{name}"]) for name in labels] for row in rows])


def latencies(call, texts: list[str]) -> dict[str, float]:
    """Median and 95th percentile of one text's prediction, in ms, after 3 warm-up calls."""
    for text in texts[:3]:
        call(text)
    seconds = []
    for text in texts:
        started = time.perf_counter()
        call(text)
        seconds.append(time.perf_counter() - started)
    return {"median_ms": 1000 * statistics.median(seconds),
            "p95_ms": 1000 * float(np.percentile(seconds, 95))}


def batch1_latencies(folder: Path, texts: list[str], max_length: int, threads: int,
                     rows: tuple[str, ...]) -> dict:
    """Each row's batch-1 latencies (a compiled model compiles in the warm-up)."""
    set_threads(threads)
    found = {}
    if "pipeline" in rows:
        classify = pipeline("text-classification", model=str(folder), device="cpu", top_k=None)
        found["pipeline"] = latencies(lambda t: classify(t, truncation=True, max_length=max_length), texts)
    for row in (r for r in rows if r != "pipeline"):
        runtime, compile = RUNTIMES[row]
        engine, tokenizer, _ = open_runtime(folder, runtime, threads, max_length, compile)
        predictor = Predictor(engine, tokenizer, max_length)
        found[row] = latencies(lambda t: predictor.logits([t]), texts)
    return found


def sizes(folder: Path) -> dict[str, float]:
    """MB of the file each row runs."""
    found = checks.sizes(folder)
    return {"pipeline": found[WEIGHTS] / 1e6,
            **{row: found[RUNTIME_FILES[runtime]] / 1e6 for row, (runtime, _) in RUNTIMES.items()}}


def measure(folder: Path, texts: list[str], label_ids: list[int], threads: list[int],
            latency_texts: int, workdir: Path, rows: tuple[str, ...] = ("pipeline", *RUNTIMES),
            reference: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    """(each of `rows` on `texts`, in one process; the pipeline's probabilities): labels and
    probabilities are compared with the pipeline's, `reference` where the pipeline is not a row."""
    assert ("pipeline" in rows) != (reference is not None), "the pipeline's probabilities, or a reference"
    labels = list(json.loads((folder / "config.json").read_text())["id2label"].values())
    max_length = trained_max_length(folder, load_tokenizer(str(folder)))[0]
    source = workdir / "texts.jsonl"
    source.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
    speed, probs = {}, {}
    for n in threads:
        if "pipeline" in rows:
            speed["pipeline", n], probs["pipeline"] = pipeline_run(folder, texts, labels, max_length, n)
        for runtime in (r for r in rows if r != "pipeline"):
            speed[runtime, n], probs[runtime] = predict_run(folder, source, workdir / f"{runtime}.csv",
                                                            runtime, n, labels)
    step = max(1, len(texts) // latency_texts)
    latency = batch1_latencies(folder, texts[::step][:latency_texts], max_length, max(threads), rows)
    truth, size = np.asarray(label_ids), sizes(folder)
    reference = probs["pipeline"] if reference is None else reference
    tokens = sum(text_tokens(text, max_length) for text in texts)
    return {"texts": len(texts), "max_length": max_length, "threads": threads,
            "torch_compiled": compiles(tokens), "rows": {
                name: {"texts_per_s": {n: speed[name, n] for n in threads}, "latency": latency[name],
                       "size_mb": size[name], "test_accuracy": float((p.argmax(1) == truth).mean()),
                       "same_label_as_pipeline": float((p.argmax(1) == reference.argmax(1)).mean()),
                       "max_prob_diff_to_pipeline": float(np.abs(p - reference).max())}
                for name, p in probs.items()}}, reference
