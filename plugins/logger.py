"""TensorBoard logging whose run folders are claimed atomically."""

import os
from pathlib import Path

from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only


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
