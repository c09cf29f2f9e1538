"""The best checkpoint as a user would choose it, and the validation metrics it was saved with."""

import math
from typing import Any

from lightning import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor


class BestCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, but on a tie of the monitored metric the checkpoint with the
    lower `tie_breaker` (validation loss) wins: two validations at val/acc 1.0 are not equally
    good when one's loss is 0.46 and the other's 0.14, and Lightning keeps the first. It also
    keeps each saved checkpoint's validation metrics (`saved_metrics`), so what the export's card
    says is that checkpoint's, not another validation's.

    Args:
        tie_breaker: the metric, lower is better, that decides between checkpoints whose monitored
            values are equal; null keeps Lightning's choice (the first)
    """

    def __init__(self, tie_breaker: str | None = "val/loss", **kwargs):
        super().__init__(**kwargs)
        self.tie_breaker = tie_breaker
        self.saved_metrics: dict[str, dict[str, float]] = {}
        self.pending: dict[str, float] | None = None

    def check_monitor_top_k(self, trainer: Trainer, current: Tensor | None = None) -> bool:
        if super().check_monitor_top_k(trainer, current):
            return True
        if current is None or self.tie_breaker is None or not self.best_k_models:
            return False
        if float(current) != float(self.best_k_models[self.kth_best_model_path]):
            return False
        candidate = trainer.callback_metrics.get(self.tie_breaker)
        kept = self.tie_value(self.kth_best_model_path)
        better = candidate is not None and float(candidate) < kept
        return trainer.strategy.reduce_boolean_decision(better)

    def tie_value(self, path: str) -> float:
        return self.saved_metrics.get(path, {}).get(self.tie_breaker, math.inf)

    def _update_best_and_save(self, current: Tensor, trainer: Trainer, monitor_candidates: dict) -> None:
        """The metrics are recorded before the save, so the checkpoint file holds them too; among
        equal monitored values, the worst tie value is replaced first and the best one is best."""
        self.pending = {key: float(value) for key, value in monitor_candidates.items()
                        if key.startswith("val/")}
        super()._update_best_and_save(current, trainer, monitor_candidates)

    def _save_checkpoint(self, trainer: Trainer, filepath: str) -> None:
        if self.pending is not None:
            self.saved_metrics = {path: metrics for path, metrics in self.saved_metrics.items()
                                  if path in self.best_k_models}
            self.saved_metrics[filepath] = self.pending
            self.pending = None
            self.break_ties()
        super()._save_checkpoint(trainer, filepath)

    def break_ties(self) -> None:
        if self.tie_breaker is None or not self.best_k_models:
            return
        best = float(self.best_k_models[self.best_model_path])
        ties = [path for path, value in self.best_k_models.items() if float(value) == best]
        self.best_model_path = min(ties, key=self.tie_value)
        if len(self.best_k_models) == self.save_top_k:
            worst = float(self.best_k_models[self.kth_best_model_path])
            ties = [path for path, value in self.best_k_models.items() if float(value) == worst]
            self.kth_best_model_path = max(ties, key=self.tie_value)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "saved_metrics": self.saved_metrics}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.saved_metrics = state_dict.get("saved_metrics", {})
