"""Paired comparisons of the distillation benchmark's runs: every model predicts the same test
texts, and each student run has a partner in every other recipe (same teacher, same seed), so a
difference is computed text by text and run by run. Its 95% interval is a two-level bootstrap:
resampling the runs (teachers and seeds vary) and the test texts (sampling error)."""

from collections.abc import Callable

import numpy as np


def correct(predictions: str, labels: np.ndarray) -> np.ndarray:
    """1 where a run's predicted label (a string of digits, one a text) is the test label."""
    return (np.frombuffer(predictions.encode(), dtype=np.uint8) - ord("0") == labels).astype(np.float64)


def bootstrap(statistic: Callable[..., float], arrays: list[np.ndarray], draws: int = 2000, seed: int = 0
              ) -> tuple[float, float, float]:
    """(the statistic, and its 2.5th and 97.5th bootstrap percentiles) of arrays [runs, texts]
    whose rows pair up: each draw takes the same resampled runs and texts from every array."""
    rng = np.random.default_rng(seed)
    runs, texts = arrays[0].shape
    values = []
    for _ in range(draws):
        rows, cols = rng.integers(runs, size=runs), rng.integers(texts, size=texts)
        values.append(statistic(*(a[rows][:, cols] for a in arrays)))
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return float(statistic(*arrays)), float(low), float(high)


def accuracy(a: np.ndarray) -> float:
    return a.mean()


def gain(base: np.ndarray, other: np.ndarray) -> float:
    return other.mean() - base.mean()


def gap_recovered(base: np.ndarray, other: np.ndarray, teacher: np.ndarray) -> float:
    """The share of labels-only training's gap to the teacher that `other` closes."""
    gap = teacher.mean() - base.mean()
    return (other.mean() - base.mean()) / gap if gap > 0 else float("nan")


# what each recipe adds to: the recipe before it on the ladder, where the student trained it
# (the texts the teacher labels against the equal-steps control: what they add beyond more steps)
BEFORE = {"control": "labels", "logits": "labels", "unlabelled": "control", "tinybert": "unlabelled",
          "minilm": "unlabelled"}


def summary(runs: list[dict], teachers: dict, labels: list[int]) -> list[dict]:
    """One row per student and recipe: accuracy, gain over the same student's labels-only runs,
    share of the gap recovered, and gain over the recipe before it (`BEFORE`, else labels only),
    each with its 95% interval, over the pairs both have."""
    truth = np.array(labels)
    rows = []
    for student in dict.fromkeys(r["student"] for r in runs):
        mine = [r for r in runs if r["student"] == student]
        base = {r["replicate"]: r for r in mine if r["recipe"] == "labels"}
        for recipe in dict.fromkeys(r["recipe"] for r in mine):
            done = {r["replicate"]: r for r in mine if r["recipe"] == recipe}
            pairs = [k for k in done if k in base]
            if not pairs:
                continue
            ours = np.stack([correct(done[k]["predictions"], truth) for k in pairs])
            theirs = np.stack([correct(base[k]["predictions"], truth) for k in pairs])
            teacher = np.stack([correct(teachers[str(base[k]["teacher"])]["predictions"], truth)
                                for k in pairs])
            row = {"student": student, "recipe": recipe, "runs": len(pairs),
                   "accuracy": bootstrap(accuracy, [ours]),
                   "teacher_accuracy": float(teacher.mean()),
                   "fit_s": round(float(np.mean([done[k]["fit_s"] for k in pairs])), 1),
                   "teacher_pass_s": teacher_pass(r for r in runs if r["recipe"] == recipe),
                   "steps": done[pairs[0]]["steps"]}
            if recipe != "labels":
                row["gain"] = bootstrap(gain, [theirs, ours])
                row["gap_recovered"] = bootstrap(gap_recovered, [theirs, ours, teacher])
                before = BEFORE[recipe] if any(r["recipe"] == BEFORE[recipe] for r in mine) else "labels"
                previous = {r["replicate"]: r for r in mine if r["recipe"] == before}
                shared = [k for k in pairs if k in previous]
                row["added_to"] = before
                row["added"] = bootstrap(gain, [
                    np.stack([correct(previous[k]["predictions"], truth) for k in shared]),
                    np.stack([correct(done[k]["predictions"], truth) for k in shared])])
            rows.append(row)
    return rows


def teacher_pass(runs) -> float | None:
    """The mean seconds of the teacher's pass over a recipe's training texts, in the runs that
    computed its logits (the others, of other students, read them from the cache)."""
    times = [r["teacher_pass_s"] for r in runs if r.get("teacher_pass_s") is not None]
    return round(float(np.mean(times)), 1) if times else None
