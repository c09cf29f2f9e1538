"""Entry point: `python train.py {fit,validate,test,predict} --config configs/...yaml`."""

import importlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import torch
import yaml
from jsonargparse import Namespace
from lightning import Callback
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities.model_helpers import is_overridden

from core.errors import UserError, at_least, check, exit_on_user_error
from plugins.checkpoint_io import checked_checkpoint
from plugins.export import HFExport
from plugins.hparams import key_hparams, result_metrics
from plugins.hub import check_hub_push, push_export
from plugins.model_card import write_model_cards

ROOT = Path(__file__).resolve().parent
DEFAULTS = ROOT / "configs" / "defaults.yaml"


class CLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("model.init_args.backbone", "data.init_args.tokenizer")
        parser.link_arguments("model.init_args.trust_remote_code", "data.init_args.trust_remote_code")
        parser.link_arguments("data.label_names", "model.init_args.label_names",
                              apply_on="instantiate")
        parser.add_argument("--test_after_fit", type=bool, default=True,
                            help="after fit, test the best checkpoint and log it with the hparams")
        parser.add_argument("--push_to_hub", type=Optional[str], default=None,
                            help="after fit, upload the export (hf_model/, with its model card) to this "
                                 "hub repo id, and a LoRA run's adapter/ to <repo id>-adapter; checked "
                                 "before training")
        parser.add_argument("--hub_private", type=bool, default=True,
                            help="make the --push_to_hub repository private")

    def parse_arguments(self, parser, args) -> None:
        """`fit --ckpt_path last` means the newest last.ckpt among this config's runs; a checkpoint
        path is checked before Lightning reads the hyperparameters in it."""
        check_config_files(sys.argv[1:] if args is None else args)
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand:
            name_run_after_configs(self.config[subcommand])
        config = self.config.get("fit") if subcommand == "fit" else None
        if config is not None and config.ckpt_path == "last" and config.trainer.logger:
            config.ckpt_path = str(newest_last_checkpoint(config.trainer.logger.init_args))
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path and ckpt_path not in ("last", "best", "hpc", "registry"):  # Lightning reads it next
            checked_checkpoint(ckpt_path, lambda: torch.load(ckpt_path, map_location="cpu", weights_only=True,
                                                             mmap=True))

    def before_fit(self) -> None:
        """The run's hyperparameters go to the logger first, so `hparams.yaml` holds them."""
        self.fit_started = time.perf_counter()
        if self.trainer.logger is not None:
            self.trainer.logger.log_hyperparams({
                **key_hparams(self.config.fit, self.trainer),
                "model": dict(self.model.hparams), "data": dict(self.datamodule.hparams)})

    def after_fit(self) -> None:
        """Test the best checkpoint, then fill TensorBoard's HPARAMS tab with real results."""
        trainer = self.trainer
        if trainer.fast_dev_run or trainer.interrupted:
            return
        wall_time = time.perf_counter() - self.fit_started
        test = {}
        if self.config.fit.test_after_fit and is_overridden("test_step", self.model):
            best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
            test = trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None)[0]
        if trainer.logger is not None:
            trainer.logger.log_hyperparams(key_hparams(self.config.fit, trainer),
                                           result_metrics(trainer, self.model, test, wall_time))
            trainer.logger.save()
        self.publish_export()

    def publish_export(self) -> None:
        """The export's model card, from what the run recorded (so after the test above), and
        the push to the hub where `--push_to_hub` asks for it."""
        trainer, config = self.trainer, self.config.fit
        export = next((c for c in trainer.callbacks if isinstance(c, HFExport)), None)
        if export is None or trainer.logger is None:
            return
        run_dir = Path(trainer.log_dir)  # a collective under DDP: every process asks
        if not trainer.is_global_zero:
            return
        folders = [run_dir / name for name in (export.dirname, export.adapter_dirname)
                   if (run_dir / name).is_dir()]
        write_model_cards(run_dir, config, trainer, self.model, folders, config.push_to_hub)
        if config.push_to_hub:
            push_export(config.push_to_hub, config.hub_private, folders)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        if self.subcommand == "fit" and config.ckpt_path:
            self.resume_in_run_folder(config)
        if self.subcommand == "fit" and config.push_to_hub:
            check_hub_push(config.push_to_hub)
        self.fall_back_to_cpu(config.trainer)
        self.drop_callbacks_switched_off(config.trainer)
        follow_task_monitor(config)
        check_trainer_options(config.trainer)

    @staticmethod
    def resume_in_run_folder(config) -> None:
        """`fit --ckpt_path <run>/checkpoints/last.ckpt` goes on logging into `<run>`, so a resumed
        run keeps one folder, one set of TensorBoard curves and one checkpoint directory."""
        ckpt = Path(config.ckpt_path)
        run_dir = ckpt.parent.parent
        logger = config.trainer.logger
        if ckpt.parent.name == "checkpoints" and (run_dir / "config.yaml").is_file() and logger:
            logger.init_args.save_dir = str(run_dir.parent)
            logger.init_args.name = ""
            logger.init_args.version = run_dir.name

    @staticmethod
    def drop_callbacks_switched_off(trainer) -> None:
        """`configs/defaults.yaml` adds a progress bar, checkpoint callbacks and a learning-rate
        monitor, which Lightning refuses once their switch is off: the switch wins."""
        off = {"TQDMProgressBar": trainer.enable_progress_bar is False,
               "ModelCheckpoint": trainer.enable_checkpointing is False,
               "LearningRateMonitor": not trainer.logger}
        trainer.callbacks = [c for c in trainer.callbacks or []
                             if not off.get(getattr(c, "class_path", "").rsplit(".", 1)[-1], False)]

    @staticmethod
    def fall_back_to_cpu(trainer) -> None:
        """Where CUDA is absent, run a GPU config on the CPU with one warning instead of failing;
        on the CPU, float16 mixed precision becomes bfloat16 mixed precision where the CPU computes
        bfloat16 natively (AVX-512 BF16 or AMX), else 32-true."""
        changed = []
        if trainer.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
            trainer.accelerator = "cpu"
            changed.append("accelerator=cpu")
            if trainer.devices not in ("auto", 1, "1"):
                trainer.devices = 1
                changed.append("devices=1")
            strategy = trainer.strategy
            name = strategy.class_path if isinstance(strategy, Namespace) else str(strategy)
            if "ddp" in name.lower() or "fsdp" in name.lower():
                trainer.strategy = "auto"
                changed.append("strategy=auto")
        on_cpu = trainer.accelerator == "cpu" or not torch.cuda.is_available()
        if on_cpu and str(trainer.precision) in ("16-mixed", "16", "16-true"):
            native = cpu_has_native_bfloat16()
            trainer.precision = "bf16-mixed" if native else "32-true"
            changed.append(f"precision={trainer.precision} (this CPU "
                           f"{'computes' if native else 'has no'} native bfloat16)")
        if changed:
            rank_zero_warn(f"no CUDA device in use: running with {', '.join(changed)}")


def cpu_has_native_bfloat16() -> bool:
    """AVX-512 BF16 or AMX: bfloat16 matrix products at twice float32's rate or more; elsewhere
    bfloat16 is emulated, slower than float32 (oneDNN's own test)."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def follow_task_monitor(config) -> None:
    """A checkpoint callback without a `monitor` tracks the task's own metric (`MONITOR` of the
    model class: val/acc for classifiers, val/perplexity for MLM), so one callback list in
    configs/defaults.yaml serves every task."""
    module_name, class_name = config.model.class_path.rsplit(".", 1)
    task = getattr(importlib.import_module(module_name), class_name)
    if not hasattr(task, "MONITOR"):  # a module of the user's own: its checkpoints keep the last
        return
    metric, mode = task.MONITOR
    for callback in config.trainer.callbacks or []:
        args = callback.get("init_args")
        if callback.class_path.endswith(".ModelCheckpoint") and args and args.save_top_k != 0 \
                and args.monitor is None:
            args.monitor, args.mode = metric, mode


def name_run_after_configs(config) -> None:
    """Runs without a logger name are filed under their configs: `--config configs/imdb/
    distilbert.yaml --config configs/overlays/lora.yaml` logs to logs/imdb/distilbert+lora/."""
    logger = config.trainer.logger
    if not logger or not isinstance(logger, Namespace) or logger.init_args.get("name") is not None:
        return
    parts = []
    for path in config.get("config") or []:
        file = Path(str(path)).resolve()
        if file.parent == ROOT / "configs" / "overlays":
            parts.append("+" + file.stem)
        elif file.is_relative_to(ROOT / "configs"):
            parts.append(str(file.relative_to(ROOT / "configs").with_suffix("")))
        else:
            parts.append(file.stem)
    logger.init_args.name = "".join(parts).lstrip("+") or "default"


def check_trainer_options(trainer) -> None:
    """The Trainer options our configs set, refused in one line before any work starts."""
    at_least("--trainer.accumulate_grad_batches", trainer.accumulate_grad_batches, 1)
    at_least("--trainer.log_every_n_steps", trainer.log_every_n_steps, 1, optional=True)
    check("--trainer.max_epochs", trainer.max_epochs, trainer.max_epochs in (None, -1) or (
        isinstance(trainer.max_epochs, int) and trainer.max_epochs >= 1), "an integer >= 1, or -1")
    check("--trainer.max_steps", trainer.max_steps, trainer.max_steps in (None, -1) or trainer.max_steps >= 1,
          "an integer >= 1, or -1")
    clip = trainer.gradient_clip_val
    check("--trainer.gradient_clip_val", clip, clip is None or clip >= 0, "a number >= 0, or null")
    interval = trainer.val_check_interval
    check("--trainer.val_check_interval", interval, not isinstance(interval, (int, float)) or (
        0 < interval <= 1 if isinstance(interval, float) else interval >= 1),
        "a fraction of an epoch in (0, 1] or a number of batches >= 1")
    for stage in ("train", "val", "test", "predict"):
        limit = getattr(trainer, f"limit_{stage}_batches")
        check(f"--trainer.limit_{stage}_batches", limit, not isinstance(limit, (int, float)) or (
            0 <= limit <= 1 if isinstance(limit, float) else limit >= 0),
            "a fraction in [0, 1] or a number of batches >= 0")


def check_config_files(args: list[str]) -> None:
    """A `--config` file that is YAML but not a mapping (a list, a bare value, nothing) is refused
    in one line naming it: jsonargparse prints 'Unexpected config' and its whole usage. Broken
    YAML is left to jsonargparse, whose message says where it breaks."""
    paths = [value for flag, value in zip(args, args[1:]) if flag in ("--config", "-c")]
    for path in [*paths, *(arg.split("=", 1)[1] for arg in args if arg.startswith("--config="))]:
        try:
            content = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError, yaml.YAMLError):
            continue
        if not isinstance(content, dict):
            what = ("a list" if isinstance(content, list) else "nothing" if content is None
                    else f"only {content!r}")
            raise UserError(f"config file {path} holds {what}, not options: expected a mapping such "
                            "as 'trainer: {max_epochs: 1}'")


def newest_last_checkpoint(logger_args) -> Path:
    runs = Path(logger_args.save_dir) / (logger_args.name or "")
    found = sorted(runs.glob("version_*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise UserError(f"--ckpt_path last: no {runs}/version_*/checkpoints/last.ckpt to resume from")
    return found[-1]


def main(args: list[str] | None = None, run: bool = True, callbacks: Sequence[Callback] = ()) -> CLI:
    """`callbacks` join those of the config, for callers that watch a run from the outside (a
    sweep's trial reporter)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return CLI(
        subclass_mode_model=True,
        subclass_mode_data=True,
        parser_kwargs={sub: {"default_config_files": [str(DEFAULTS)]}
                       for sub in ("fit", "validate", "test", "predict")},
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        trainer_defaults={"callbacks": list(callbacks)},
        args=args,
        run=run,
    )


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    exit_on_user_error(main)
