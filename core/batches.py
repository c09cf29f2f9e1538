"""How many texts a batch holds: one answer for every layer, whatever the batch's layout."""


def num_texts(batch: dict) -> int:
    """Packed batches (`datamodules.packing`) hold all their texts in one row and say how many in
    `num_texts`; a padded batch has one row per text. Never `len(labels)`: per-token labels (MLM,
    tagging) have one entry per token, not per text."""
    if "num_texts" in batch:
        return int(batch["num_texts"])
    return batch["input_ids"].shape[0]


def model_inputs(batch: dict, with_labels: bool = True) -> dict:
    """The batch as keyword arguments of a Hugging Face model: without the keys only we read."""
    drop = {"num_texts"} if with_labels else {"num_texts", "labels"}
    return {k: v for k, v in batch.items() if k not in drop}


# The label of a text without one (`--data.unlabelled`, which a distillation's teacher labels):
# cross-entropy's ignore index, so no loss ever counts it as a class.
UNLABELLED = -100
