"""The run's key knobs against its results, for TensorBoard's HPARAMS tab."""

from lightning import LightningModule, Trainer

from lightning_modules.base import parameter_counts


def key_hparams(config, trainer: Trainer) -> dict:
    """The knobs people compare runs by, from the resolved CLI config, and the metric the best
    checkpoint monitors with its mode (max or min), so `compare.py` reads them instead of guessing
    them from the task."""
    model, data = config.model.init_args, config.data.init_args
    lora = model.get("lora")
    checkpoint = trainer.checkpoint_callback
    monitor = checkpoint.monitor if checkpoint else None
    return {
        "task": config.model.class_path.rsplit(".", 1)[-1],
        "backbone": model.backbone,
        "lora_r": lora.r if lora else 0,
        "freeze_layers": model.get("freeze_layers", 0),
        "learning_rate": model.learning_rate,
        "effective_batch": data.batch_size * trainer.accumulate_grad_batches * trainer.world_size,
        "precision": str(trainer.precision),
        "max_tokens": data.get("max_length") or data.get("block_size"),
        "monitor": monitor,
        "monitor_mode": checkpoint.mode if monitor else None,
    }


def result_metrics(trainer: Trainer, module: LightningModule, test: dict, wall_time_s: float) -> dict:
    """Best monitored validation value, final test metrics, trainable parameters, wall time."""
    metrics = {"hp/trainable_params": parameter_counts(module)[1], "hp/wall_time_s": wall_time_s}
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None and checkpoint.best_model_score is not None:
        metrics[f"hp/best_{checkpoint.monitor.replace('/', '_')}"] = float(checkpoint.best_model_score)
    metrics.update({f"hp/{k.replace('/', '_')}": float(v) for k, v in test.items()})
    return metrics
