"""Checkpoints written atomically (a kill during the write never leaves a corrupt file) and read
with a one-line error for a file that is not one of ours."""

import os
from pathlib import Path

import torch
from jsonargparse import Namespace
from lightning.pytorch.plugins.io import TorchCheckpointIO

from core.errors import UserError
from plugins.logger import newest_last_checkpoint

NAMED_CHECKPOINTS = ("last", "best", "hpc", "registry")  # Lightning resolves these itself


def readable_checkpoint(path, load) -> dict:
    """`load()` of the file at `path`, or one line saying why it cannot be read."""
    if not Path(path).is_file():
        raise UserError(f"--ckpt_path '{path}' does not exist")
    try:
        checkpoint = load()
    except Exception as err:  # unpickling, zip or truncation errors: not a checkpoint
        message = str(err).strip().splitlines()
        raise UserError(f"--ckpt_path '{path}' is not a readable checkpoint "
                        f"({type(err).__name__}: {message[0] if message else ''})") from None
    return checkpoint


def checked_checkpoint(path, load) -> dict:
    """`load()` of the checkpoint at `path`, or one line saying why it is not one of ours."""
    checkpoint = readable_checkpoint(path, load)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserError(f"--ckpt_path '{path}' is not a Lightning checkpoint (no state_dict); to "
                        "start from exported weights, pass their folder as --model.backbone")
    return checkpoint


def resolve_ckpt_path(config: Namespace, subcommand: str) -> None:
    """`fit --ckpt_path last` means the newest last.ckpt among this config's runs; a checkpoint
    path is checked before Lightning reads the hyperparameters in it."""
    if subcommand == "fit" and config.ckpt_path == "last" and config.trainer.logger:
        config.ckpt_path = str(newest_last_checkpoint(config.trainer.logger.init_args))
    path = config.get("ckpt_path")
    if path and path not in NAMED_CHECKPOINTS:
        checked_checkpoint(path, lambda: torch.load(path, map_location="cpu", weights_only=True, mmap=True))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes `<name>.tmp` next to the target, then renames it over the target in one step.

    It reads any file Lightning hands it, including the bare weights that the spawn and fork
    strategies (`ddp_spawn`, `ddp_fork`) pass back from their processes after `fit`; a path
    the user gives is checked to be a Lightning checkpoint beforehand (`train.py`)."""

    def load_checkpoint(self, path, *args, **kwargs) -> dict:
        return readable_checkpoint(path, lambda: super(AtomicCheckpointIO, self).load_checkpoint(
            path, *args, **kwargs))

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)
