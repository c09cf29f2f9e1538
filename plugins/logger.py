"""TensorBoard logging: run folders named after the configs and claimed atomically, and the folder
a resumed run goes on in."""

import os
from pathlib import Path

from jsonargparse import Namespace
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from core.errors import UserError


class ClaimingTensorBoardLogger(TensorBoardLogger):
    """Lightning's TensorBoardLogger, except that the next `version_N` folder is created with
    `mkdir`, which fails if another run made it first: two runs started at the same moment
    never write into the same folder."""

    def _get_next_version(self) -> int:
        version = super()._get_next_version()
        if rank_zero_only.rank != 0:
            return version
        root = Path(self.root_dir)
        root.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                os.mkdir(root / f"version_{version}")
                return version
            except FileExistsError:
                version += 1


def name_run_after_configs(config: Namespace, configs_dir: Path) -> None:
    """Runs without a logger name are filed under their configs: `--config configs/imdb/
    distilbert.yaml --config configs/overlays/lora.yaml` logs to logs/imdb/distilbert+lora/."""
    logger = config.trainer.logger
    if not logger or not isinstance(logger, Namespace) or logger.init_args.get("name") is not None:
        return
    parts = []
    for path in config.get("config") or []:
        file = Path(str(path)).resolve()
        if file.parent == configs_dir / "overlays":
            parts.append("+" + file.stem)
        elif file.is_relative_to(configs_dir):
            parts.append(str(file.relative_to(configs_dir).with_suffix("")))
        else:
            parts.append(file.stem)
    logger.init_args.name = "".join(parts).lstrip("+") or "default"


def newest_last_checkpoint(logger_args: Namespace) -> Path:
    """`fit --ckpt_path last`: the newest last.ckpt among the runs of this config."""
    runs = Path(logger_args.save_dir) / (logger_args.name or "")
    found = sorted(runs.glob("version_*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise UserError(f"--ckpt_path last: no {runs}/version_*/checkpoints/last.ckpt to resume from")
    return found[-1]


def resume_in_run_folder(config: Namespace) -> None:
    """`fit --ckpt_path <run>/checkpoints/last.ckpt` goes on logging into `<run>`, so a resumed
    run keeps one folder, one set of TensorBoard curves and one checkpoint directory; `test`,
    `validate` and `predict` with a checkpoint of a run log into that run (and write their
    predictions there), not into a new version_N."""
    ckpt = Path(config.ckpt_path)
    run_dir = ckpt.parent.parent
    logger = config.trainer.logger
    if ckpt.parent.name == "checkpoints" and (run_dir / "config.yaml").is_file() and logger:
        logger.init_args.save_dir = str(run_dir.parent)
        logger.init_args.name = ""
        logger.init_args.version = run_dir.name
