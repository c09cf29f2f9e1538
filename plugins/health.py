"""Training health: stop at the first non-finite loss, and log the gradient norm."""

import torch
from lightning import Callback, LightningModule, Trainer

from core.errors import UserError


class StopOnNonFiniteLoss(Callback):
    """Stops before a nan or inf loss reaches the weights or a checkpoint, in one line."""

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            raise UserError(
                f"the training loss is {loss.item()} at step {trainer.global_step} (epoch "
                f"{trainer.current_epoch}); the last good checkpoint is kept. Usual "
                "fixes: --trainer.precision bf16-mixed instead of 16-mixed, a lower "
                "--model.learning_rate, a lower --trainer.gradient_clip_val (default 1.0)"
            )


class GradientNorm(Callback):
    """Logs `train/grad_norm` (already unscaled under mixed precision) every logging step."""

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer) -> None:
        if trainer.global_step % trainer.log_every_n_steps == 0:
            grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
            if grads:
                pl_module.log("train/grad_norm", torch.nn.utils.get_total_norm(grads))
