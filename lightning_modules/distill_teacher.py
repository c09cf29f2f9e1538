"""The teacher of a distillation: found (an export of this project, its run folder, or any local
Hugging Face classifier), checked against the data and the student's tokenizer before anything
loads, and run beside the student on the same batch."""

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

from core.errors import UserError
from core.pretrained import from_pretrained, load_tokenizer
from lightning_modules.heads import classifier_outputs
from lightning_modules.packing import use_varlen_attention

EXPECTED = ("expected a fine-tuned classifier folder: an export of train.py fit (logs/.../hf_model), "
            "its run folder, or a local Hugging Face classifier")


def teacher_folder(teacher: str) -> Path:
    """The teacher's model folder: the folder itself, or a run folder's `hf_model/`."""
    path = Path(teacher).expanduser()
    if not path.is_dir():
        raise UserError(f"--model.teacher '{teacher}' does not exist or is not a folder; {EXPECTED}")
    if (path / "hf_model" / "config.json").is_file():
        path = path / "hf_model"
    if not (path / "config.json").is_file():
        raise UserError(f"--model.teacher '{teacher}' holds no config.json, so it is no model; {EXPECTED}")
    return path.resolve()


def check_teacher(teacher: str, folder: Path, label_names: list[str], backbone: str,
                  trust_remote_code: bool) -> None:
    """A classifier for the data's labels, in their order, reading the student's vocabulary (it
    runs on the student's tokenized batch): one line naming what differs, before any weights load."""
    config = from_pretrained(AutoConfig, str(folder), "teacher config", trust_remote_code=trust_remote_code)
    kinds = config.architectures or [config.model_type]
    if not any(kind.endswith("ForSequenceClassification") for kind in kinds):
        raise UserError(f"--model.teacher '{teacher}' is a {kinds[0]}, not a sequence classifier; {EXPECTED}")
    labels = [config.id2label[i] for i in range(config.num_labels)]
    if labels != list(label_names):
        raise UserError(f"--model.teacher '{teacher}' classifies into {labels}, but the data's labels are "
                        f"{list(label_names)}: the teacher must have the same labels in the same order")
    theirs = load_tokenizer(str(folder), trust_remote_code).get_vocab()
    ours = load_tokenizer(backbone, trust_remote_code).get_vocab()
    if theirs != ours:
        differ = len(set(theirs.items()) ^ set(ours.items()))
        raise UserError(f"--model.teacher '{teacher}' has another vocabulary than backbone '{backbone}' "
                        f"({len(theirs):,} and {len(ours):,} tokens, {differ:,} entries differ): the "
                        "teacher reads the student's tokenized batch, so both need the same tokenizer")


class Teacher:
    """The fine-tuned classifier the student learns from. It is held outside the student's module
    tree, so it never trains, is never saved in a checkpoint or counted in the student's
    parameters, and stays in eval mode whatever Lightning switches (no dropout: its outputs are
    deterministic). Where it runs, it follows the student's device and dtype; under mixed
    precision the run's autocast covers it, so it runs in the run's precision."""

    def __init__(self, folder: Path, trust_remote_code: bool):
        self.folder = folder
        self.model = from_pretrained(AutoModelForSequenceClassification, str(folder), "teacher",
                                     trust_remote_code=trust_remote_code)
        self.takes_packed = use_varlen_attention(self.model)
        self.model.eval().requires_grad_(False)
        self.config = self.model.config

    def follow(self, like: torch.Tensor) -> None:
        """On the device and in the floating dtype of the student's weight `like`."""
        weight = next(self.model.parameters())
        if weight.device != like.device or weight.dtype != like.dtype:
            self.model.to(device=like.device, dtype=like.dtype)

    @torch.no_grad()
    def logits(self, batch: dict, like: torch.Tensor) -> torch.Tensor:
        """[texts, labels] on the student's padded or packed batch."""
        self.follow(like)
        return classifier_outputs(self.model, batch, False, self.takes_packed,
                                  f"teacher '{self.folder}'").logits
