"""Packed batches: the texts of a batch concatenated into one row, so no padding is computed."""

import torch
from transformers import DataCollatorWithFlattening

COMPILED_MULTIPLE = 256  # packed row lengths a compiled model sees: a handful of shapes


def rounding(compiling: bool) -> int:
    """The multiple packed rows are rounded up to by default: only compiled kernels gain from it."""
    return COMPILED_MULTIPLE if compiling else 1


class PackedCollator:
    """Turns a batch of tokenized texts into one packed row, built by transformers' own
    `DataCollatorWithFlattening`.

    `input_ids` and `position_ids` have shape [1, total tokens] (positions restart at 0 for each
    text); `cu_seq_lens_q` / `cu_seq_lens_k` (int32) are the texts' cumulative boundaries and
    `max_length_q` / `max_length_k` a bound on their length, under the names transformers passes
    down to attention functions (`lightning_modules.packing` reads them); `labels` has one entry
    per text; `num_texts` says how many texts the row holds (`core.batches.num_texts`). The batch
    holds exactly the same texts as a padded one, so the loss is the same.

    The row is rounded up to a multiple of `multiple` tokens by one segment of [PAD] tokens that
    attends only to itself and that no head reads: compiled kernels then see a handful of shapes
    instead of a new one every step (`rounding`); without compilation that segment would only
    add work, so it is empty (multiple 1). `max_length_*` is a constant (the longest a text or
    that segment can be), for the same reason.
    """

    def __init__(self, pad_token_id: int, max_length: int, multiple: int = 1):
        self.pad_token_id = pad_token_id
        self.text_max_length = max_length
        self.multiple = multiple
        self.flatten = DataCollatorWithFlattening(return_flash_attn_kwargs=True)

    @property
    def max_length(self) -> int:
        return max(self.text_max_length, self.multiple - 1)

    def __call__(self, features: list[dict]) -> dict:
        flat = self.flatten([{"input_ids": f["input_ids"]} for f in features])
        total = flat["input_ids"].shape[1]
        pad = -total % self.multiple
        # always one closing segment (empty when no padding is needed): one shape for cu_seq_lens
        cu_seq_lens = torch.cat([flat["cu_seq_lens_q"], flat["cu_seq_lens_q"].new_tensor([total + pad])])
        ids, positions = flat["input_ids"], flat["position_ids"]
        batch = {
            "input_ids": torch.cat([ids, ids.new_full((1, pad), self.pad_token_id)], 1),
            "position_ids": torch.cat([positions, positions.new_zeros((1, pad))], 1),
            "cu_seq_lens_q": cu_seq_lens,
            "cu_seq_lens_k": cu_seq_lens,
            "max_length_q": self.max_length,
            "max_length_k": self.max_length,
            "labels": torch.tensor([f["labels"] for f in features]),
            "num_texts": len(features),
        }
        if "teacher_logits" in features[0]:  # a distillation's cached teacher (`datamodules.teacher_logits`)
            batch["teacher_logits"] = torch.tensor([f["teacher_logits"] for f in features])
        return batch
