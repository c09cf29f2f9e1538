"""What `benchmarks/inference.py` measures on one export, each row a whole process of its own on the
same texts, one at a time: `benchmarks/pipeline_predict.py` (transformers.pipeline, batch 32, in
fp32, and in bf16 where this CPU multiplies bf16 faster) against `predict.py` on each runtime.
A row's process time runs from its start to its exit (imports, loading, the probe of PyTorch's CPU
paths, compiling); its texts/s count the texts over that time, and over the process's own
prediction time. A compiled row starts with an empty inductor cache of its own (cold)."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np

from core.bf16 import cpu_bf16_faster
from deploy import checks
from deploy.layout import RUNTIME_FILES, WEIGHTS

ROOT = Path(__file__).resolve().parents[1]
# each predict.py row: (--runtime, --compile; None: predict.py's default)
RUNTIMES = {"torch": ("torch", None), "torch-compiled": ("torch", True), "onnx": ("onnx", None),
            "onnx-int8": ("onnx-int8", None)}
CLOSING = re.compile(r"predicted (\d+) texts in ([\d.]+) s: .*?\((\S+), (.+?), (\d+) threads\); (\d+) cut")


def timed(command: list[str], env: dict) -> tuple[float, str]:
    """(seconds from the process's start to its exit, what it wrote to stderr)."""
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{' '.join(command[:3])} failed:\n{done.stderr[-3000:]}")
    return seconds, done.stderr


def pipeline_row(folder: Path, source: Path, out: Path, max_length: int, threads: int, dtype: str,
                 env: dict) -> dict:
    command = [sys.executable, str(ROOT / "benchmarks" / "pipeline_predict.py"), str(folder), str(source),
               str(out), "--max_length", str(max_length), "--threads", str(threads), "--dtype", dtype]
    process, _ = timed(command, env)
    found = json.loads(out.read_text())
    return {"process_s": process, "predict_s": found["seconds"], "probs": np.array(found["probs"])}


def predict_row(folder: Path, source: Path, out: Path, row: str, max_length: int, threads: int,
                labels: list[str], env: dict) -> dict:
    runtime, compile = RUNTIMES[row]
    command = [sys.executable, str(ROOT / "predict.py"), str(folder), str(source), "--output", str(out),
               "--runtime", runtime, "--threads", str(threads), "--max_length", str(max_length),
               "--overwrite", "true"]
    with TemporaryDirectory() as inductor_cache:  # a compiled row compiles cold
        if compile is not None:
            command += ["--compile", str(compile).lower()]
        process, stderr = timed(command, {**env, "TORCHINDUCTOR_CACHE_DIR": inductor_cache})
    closing = CLOSING.search(stderr)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return {"process_s": process, "predict_s": float(closing.group(2)), "path": closing.group(4),
            "cut": int(closing.group(6)),
            "probs": np.array([[row[f"prob_{name}"] for name in labels] for row in rows])}


def sizes(folder: Path) -> dict[str, float]:
    """MB of the file each row runs."""
    found = checks.sizes(folder)
    return {row: found[RUNTIME_FILES[runtime]] / 1e6 for row, (runtime, _) in RUNTIMES.items()} | {
        "pipeline": found[WEIGHTS] / 1e6, "pipeline-bf16": found[WEIGHTS] / 1e6}


def measure(folder: Path, texts: list[str], label_ids: list[int], max_length: int, threads: int,
            workdir: Path, rows: tuple[str, ...] = ("pipeline", *RUNTIMES),
            reference: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    """(each of `rows` on `texts`, a process each; the pipeline's probabilities): labels and
    probabilities are compared with the fp32 pipeline's, `reference` where it is not a row."""
    labels = list(json.loads((folder / "config.json").read_text())["id2label"].values())
    folder, workdir = folder.resolve(), workdir.resolve()  # the processes run in the repository's root
    source = workdir / "texts.jsonl"
    source.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "true"}
    if "pipeline" in rows and cpu_bf16_faster():
        rows = ("pipeline", "pipeline-bf16", *rows[1:])
    found = {}
    for row in rows:
        print(f"  {row} ...", flush=True)
        if row.startswith("pipeline"):
            dtype = "bfloat16" if row == "pipeline-bf16" else "float32"
            found[row] = pipeline_row(folder, source, workdir / f"{row}.json", max_length, threads, dtype,
                                      env)
        else:
            found[row] = predict_row(folder, source, workdir / f"{row}.jsonl", row, max_length, threads,
                                     labels, env)
    reference = found["pipeline"]["probs"] if reference is None else reference
    truth, size = np.asarray(label_ids), sizes(folder)
    return {"texts": len(texts), "max_length": max_length, "threads": threads, "rows": {
        name: {"process_s": row["process_s"], "predict_s": row["predict_s"],
               "texts_per_s_process": len(texts) / row["process_s"],
               "texts_per_s_predicting": len(texts) / row["predict_s"],
               "path": row.get("path", "pipeline"), "cut": row.get("cut"), "size_mb": size[name],
               "test_accuracy": float((row["probs"].argmax(1) == truth).mean()),
               "same_label_as_pipeline": float((row["probs"].argmax(1) == reference.argmax(1)).mean()),
               "max_prob_diff_to_pipeline": float(np.abs(row["probs"] - reference).max())}
        for name, row in found.items()}}, reference
