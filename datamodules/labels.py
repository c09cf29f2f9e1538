"""Labels of classification data: ids or names -> ids, and enough texts of every class."""

import math
from collections import Counter

from core.errors import UserError


def label_id(value, names: list[str], field: str, where: str, row: int) -> int:
    """A label given as a class id or name -> its id; a missing one is reported as missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise UserError(f"{where} row {row}: missing {field!r}")
    if isinstance(value, float) and value.is_integer():  # a CSV column with a gap reads as floats
        value = int(value)
    if isinstance(value, str) and value in names:
        return names.index(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return value
    raise UserError(f"{where} row {row}: label {value!r} is outside the known classes: "
                    f"ids 0-{len(names) - 1} or names {names}")


def check_class_counts(labels: list[int], names: list[str], val_fraction: float, holding_out: bool) -> None:
    """Every class needs training texts, and a stratified held-out split two of each."""
    counts = Counter(labels)
    per_class = ", ".join(f"{name}: {counts[i]}" for i, name in enumerate(names))
    fewest = min(counts[i] for i in range(len(names)))
    if not holding_out:
        if fewest < 1:
            raise UserError(f"the training data lacks a class ({per_class}): every class needs "
                            "at least one training text")
        return
    held_out = math.ceil(val_fraction * len(labels))
    if fewest < 2 or not (len(names) <= held_out <= len(labels) - len(names)):
        raise UserError(
            f"the training data is too small to hold out a stratified validation split of "
            f"{val_fraction:g} ({len(labels)} texts; {per_class}): it needs at least 2 texts of each "
            f"class and {len(names)} texts on each side; add texts, change --data.val_fraction "
            "or add a validation file")
