"""What our code adds to Lightning's switches: `configs/defaults.yaml` adds a progress bar,
checkpoint callbacks and a learning-rate monitor, which Lightning refuses once their switch is
off; `plugins.defaults.drop_callbacks_switched_off` drops them, and only them. And the early
stopping overlay stops a run that does not learn."""

from collections import Counter

import pytest
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint, TQDMProgressBar

from tests.helpers import CONFIGS, quick_args
from train import DEFAULTS, main

# switch -> (arguments, the callback class of configs/defaults.yaml it drops)
SWITCHES = {
    "no progress bar": (["--trainer.enable_progress_bar", "false"], TQDMProgressBar),
    "no checkpointing": (["--trainer.enable_checkpointing", "false"], ModelCheckpoint),
    "no logger": (["--trainer.logger", "false"], LearningRateMonitor),
}


def callbacks_of(tiny_bert, tmp_path, shared_cache, *switch: str) -> Counter:
    """The Trainer's callbacks, by class, as train.py builds them for `fit`, which is not run:
    without a subcommand (run=False) the defaults file is given first, as train.py applies it."""
    args = ["--config", str(DEFAULTS), *quick_args(tiny_bert, tmp_path, shared_cache, *switch)[1:]]
    return Counter(type(c) for c in main(args, run=False).trainer.callbacks)


@pytest.mark.parametrize("switch", SWITCHES)
def test_a_switch_drops_the_default_callbacks_it_turns_off_and_no_other(switch, tmp_path, tiny_bert,
                                                                           shared_cache):
    args, dropped = SWITCHES[switch]
    defaults = callbacks_of(tiny_bert, tmp_path, shared_cache)
    assert sum(n for kind, n in defaults.items() if issubclass(kind, dropped)) >= 1  # the defaults add it
    switched = callbacks_of(tiny_bert, tmp_path, shared_cache, *args)  # Lightning refuses a kept one
    assert switched == Counter({kind: n for kind, n in defaults.items() if not issubclass(kind, dropped)})


def test_a_run_with_every_switch_off_trains(tmp_path, tiny_bert, shared_cache):
    """The learning-rate monitor is refused only when training starts, without a logger."""
    switches = [arg for args, _ in SWITCHES.values() for arg in args]
    cli = main(quick_args(tiny_bert, tmp_path, shared_cache, *switches, "--trainer.max_steps", "1",
                          "--trainer.limit_val_batches", "0", "--test_after_fit", "false"))
    assert cli.trainer.state.finished and cli.trainer.global_step == 1
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("events.out.tfevents.*"))


def test_early_stopping_overlay_stops_a_run(tmp_path, tiny_bert, shared_cache):
    overlay = str(CONFIGS / "overlays" / "early_stopping.yaml")
    cli = main(quick_args(tiny_bert, tmp_path, shared_cache, "--config", overlay,
                          "--model.learning_rate", "1e-9", "--test_after_fit", "false",
                          "--trainer.max_epochs", "10", "--trainer.val_check_interval", "1.0"))
    stoppers = [c for c in cli.trainer.callbacks if isinstance(c, EarlyStopping)]
    assert len(stoppers) == 1 and stoppers[0].monitor == "val/acc"
    assert stoppers[0].stopped_epoch > 0 and cli.trainer.current_epoch < 10  # no learning, patience 3
