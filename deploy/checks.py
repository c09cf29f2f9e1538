"""What the ONNX files are checked and measured on when they are written: ONNX Runtime's fp32
logits against PyTorch's on test texts of several lengths, together (padded) and one at a time,
and the int8 file's logits against fp32's on the same texts; then the test accuracy of PyTorch,
fp32 and int8 on at most `max_test_texts` test texts, and every file's size, for `checks.json` and
the model card."""

import json
import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from deploy.layout import RUNTIME_FILES
from deploy.streaming import Predictor

log = logging.getLogger(__name__)
# fp32 rounding over a dozen layers moves logits by about 1e-6 of their size; a wrong graph
# (a baked-in length, a dropped mask) moves them by 1e-3 or more
RELATIVE_TOLERANCE = 1e-5
# int8 weights moved fine-tuned MiniLM's logits by 0.16 on the check texts: 7% of their size on
# AG News (2.2), 13% on IMDB (1.2); a wrong graph (a lost scale, a head of int8 noise) moves them
# by about their size
INT8_TOLERANCE = 0.25
CHECK_TEXTS = 8  # texts of lengths spread from the shortest to the longest
CHECK_POOL = 2000  # test texts the check texts are chosen from


def spread_by_length(texts: list[str], tokenizer, max_length: int) -> list[list[int]]:
    """Token ids of `CHECK_TEXTS` texts whose lengths run from the shortest to the longest."""
    ids = tokenizer(texts[:CHECK_POOL], truncation=True, max_length=max_length)["input_ids"]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    picks = {order[round(k * (len(order) - 1) / (CHECK_TEXTS - 1))] for k in range(CHECK_TEXTS)}
    return sorted((ids[i] for i in picks), key=len)


def check_logits(reference, runtime, tokenizer, texts: list[str], max_length: int,
                 relative_tolerance: float = RELATIVE_TOLERANCE, what: str = "ONNX Runtime's",
                 against: str = "PyTorch's") -> dict:
    """The largest gap between `runtime`'s logits and `reference`'s, over the check texts in one
    padded batch and each alone; past `relative_tolerance` of the logits' size (at least 1) the
    export is wrong, and says so."""
    chosen = spread_by_length(texts, tokenizer, max_length)
    expected = reference.logits(chosen)
    together = runtime.logits(chosen)
    alone = np.concatenate([runtime.logits([ids]) for ids in chosen])
    gap = float(max(np.abs(together - expected).max(), np.abs(alone - expected).max()))
    tolerance = relative_tolerance * max(1.0, float(np.abs(expected).max()))
    lengths = [len(ids) for ids in chosen]
    if not gap <= tolerance:
        raise RuntimeError(f"{what} logits differ from {against} by {gap:.2e} (tolerance {tolerance:.1e}) "
                           f"on texts of {lengths} tokens: the ONNX export is wrong")
    return {"texts": len(chosen), "tokens": lengths, "max_abs_diff": gap, "tolerance": tolerance}


def spread(texts: list[str], labels: list[int], most: int) -> tuple[list[str], list[int]]:
    """At most `most` of the texts, evenly spaced through the split (which may be sorted by label)."""
    picks = range(len(texts)) if len(texts) <= most else [i * len(texts) // most for i in range(most)]
    return [texts[i] for i in picks], [labels[i] for i in picks]


def int8_drop(accuracy: dict[str, float], max_int8_drop: float) -> float:
    """Points of test accuracy int8 loses against PyTorch; past `max_int8_drop`, one warning."""
    # rounded: 100 * (0.54 - 0.53) is 1.0000000000000009, past a limit of exactly 1
    drop = round(100 * (accuracy["torch"] - accuracy["onnx-int8"]), 6)
    if drop > max_int8_drop:
        log.warning("int8 test accuracy %.4f is %.2f points below PyTorch's %.4f (more than "
                    "max_int8_drop %g): model.int8.onnx is written all the same; ship model.onnx "
                    "where those points matter", accuracy["onnx-int8"], drop, accuracy["torch"],
                    max_int8_drop)
    return drop


def accuracies(runtimes: dict, tokenizer, max_length: int, texts: list[str], labels: list[int],
               max_int8_drop: float) -> dict:
    """Each runtime's test accuracy, and how often int8 predicts PyTorch's label, with a progress bar."""
    expected = np.asarray(labels)
    with tqdm(total=len(texts) * len(runtimes), unit=" texts", desc="measuring the exports") as bar:
        predicted = {name: Predictor(runtime, tokenizer, max_length).labels(texts, bar.update)
                     for name, runtime in runtimes.items()}
    accuracy = {name: float((found == expected).mean()) for name, found in predicted.items()}
    return {"texts": len(texts), "accuracy": accuracy,
            "int8_agreement": float((predicted["onnx-int8"] == predicted["torch"]).mean()),
            "int8_drop_points": round(int8_drop(accuracy, max_int8_drop), 4),
            "max_int8_drop": max_int8_drop}


def sizes(folder: Path) -> dict[str, int]:
    """Bytes of the PyTorch weights and of each ONNX file."""
    return {name: (folder / name).stat().st_size for name in RUNTIME_FILES.values()}


def save(path: Path, found: dict) -> None:
    path.write_text(json.dumps(found, indent=2) + "\n")
