"""Entry point: `python train.py {fit,validate,test,predict} --config configs/...yaml`."""

import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from lightning import Callback
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities.model_helpers import is_overridden

from core.config_files import check_mappings
from core.errors import exit_on_user_error
from core.trainer_config import check_trainer_options, fall_back_to_cpu
from plugins.checkpoint_io import resolve_ckpt_path
from plugins.defaults import drop_callbacks_switched_off, follow_task_monitor
from plugins.export import HFExport
from plugins.hparams import key_hparams, result_metrics
from plugins.hub import add_hub_options, check_hub_push
from plugins.logger import name_run_after_configs, resume_in_run_folder
from plugins.run_folder import has_run_folder, keep_unlogged_runs_under_logs

ROOT = Path(__file__).resolve().parent
DEFAULTS = ROOT / "configs" / "defaults.yaml"
log = logging.getLogger("train")


class CLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("model.init_args.backbone", "data.init_args.tokenizer")
        parser.link_arguments("model.init_args.trust_remote_code", "data.init_args.trust_remote_code")
        parser.link_arguments("data.label_names", "model.init_args.label_names", apply_on="instantiate")
        parser.add_argument("--test_after_fit", type=bool, default=True,
                            help="after fit, test the best checkpoint and log it with the hparams")
        add_hub_options(parser)

    def parse_arguments(self, parser, args) -> None:
        """Config files, the run's name and `--ckpt_path` are checked before Lightning reads them."""
        check_mappings(sys.argv[1:] if args is None else args, "config file",
                       "not options: expected a mapping such as 'trainer: {max_epochs: 1}'")
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        config = self.config[subcommand]
        name_run_after_configs(config, ROOT / "configs")
        resolve_ckpt_path(config, subcommand)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.get("ckpt_path"):  # fit goes on in the run's folder; test, validate, predict log there
            resume_in_run_folder(config)
        if self.subcommand not in ("fit", None):  # beside the run's own config.yaml, not over it
            self.save_config_kwargs = {**self.save_config_kwargs,
                                       "config_filename": f"config-{self.subcommand}.yaml"}
        if self.subcommand == "fit" and config.push_to_hub:
            check_hub_push(config.push_to_hub)
        model, data = config.model.init_args, config.data.init_args
        keep_unlogged_runs_under_logs(config.trainer)
        fall_back_to_cpu(config.trainer, model.get("backbone"),
                         data.get("max_length") or data.get("block_size") or 512,
                         model.get("trust_remote_code", False))
        drop_callbacks_switched_off(config.trainer, self.subcommand)
        follow_task_monitor(config)
        check_trainer_options(config.trainer)

    def before_fit(self) -> None:
        """The run's hyperparameters go to the logger first, so `hparams.yaml` holds them."""
        self.fit_started = time.perf_counter()
        if not has_run_folder(self.trainer):
            log.info("no logger: checkpoints and the export go to %s", self.trainer.default_root_dir)
        else:
            log.info("logging to %s (tensorboard --logdir %s)", self.trainer.log_dir,
                     self.trainer.logger.save_dir)
            self.trainer.logger.log_hyperparams({
                **key_hparams(self.config.fit, self.trainer),
                "model": dict(self.model.hparams), "data": dict(self.datamodule.hparams)})

    def after_fit(self) -> None:
        """Test the best checkpoint, fill TensorBoard's HPARAMS tab with real results, then write
        the export's card from them (and push it where asked)."""
        trainer = self.trainer
        if trainer.fast_dev_run or trainer.interrupted:
            return
        wall_time = time.perf_counter() - self.fit_started
        test = {}
        if self.config.fit.test_after_fit and is_overridden("test_step", self.model):
            best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
            test = trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None)[0]
        if trainer.logger is None:
            return
        trainer.logger.log_hyperparams(key_hparams(self.config.fit, trainer),
                                       result_metrics(trainer, self.model, test, wall_time))
        trainer.logger.save()
        for export in (c for c in trainer.callbacks if isinstance(c, HFExport)):
            export.publish(trainer, self.config.fit, self.model, test)


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
    from core.console import quiet_console

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    quiet_console()
    exit_on_user_error(main)
