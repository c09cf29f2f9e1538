"""The console's quiet default: third-party deprecations, advertisements and transformers' load
report are silenced by name (core.console), and nothing else is."""

import logging
import warnings
from contextlib import contextmanager

import datasets
from lightning import Callback
from transformers.utils import logging as transformers_logging

from core.console import SILENCED, VERBOSE, Logged, Warned, progress_if_long, quiet_console
from tests.helpers import quick_args
from train import main

SITE = "/site-packages/"


@contextmanager
def quieted():
    """`quiet_console()` with every warning recorded, undone after: the warning filters with
    catch_warnings, the log filters and the progress bars by hand."""
    bars = datasets.is_progress_bar_enabled()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            quiet_console()
            yield caught
    finally:
        for item in SILENCED:
            if isinstance(item, Logged):
                logging.getLogger(item.logger).removeFilter(item)
        if bars:
            datasets.enable_progress_bars()
        transformers_logging.set_tqdm_hook(None)


class WarnsOnce(Callback):
    def on_train_start(self, trainer, pl_module) -> None:
        warnings.warn("a warning of ours", UserWarning)


def test_a_short_fit_shows_our_warnings_and_no_third_party_line(tiny_bert, tmp_path, shared_cache,
                                                                 capfd, caplog):
    caplog.set_level(logging.INFO)
    with quieted() as caught:
        main(quick_args(tiny_bert, tmp_path, shared_cache, "--trainer.max_steps", "2",
                        "--trainer.log_every_n_steps", "1"), callbacks=[WarnsOnce()])
    theirs = [f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}" for w in caught
              if SITE in w.filename.replace("\\", "/")]
    assert not theirs, "\n".join(theirs)
    assert "a warning of ours" in {str(w.message) for w in caught}
    console = capfd.readouterr()
    for line in ("LOAD REPORT", "💡 Tip", "Casting the dataset", "Saving the dataset", "tokenizing:",
                 "Loading weights", "Writing model shards"):
        assert line not in console.err + console.out
    assert "created fresh for 2 labels" in caplog.text  # our line instead of the load report


def warns(category, module: str, message: str) -> list:
    """The warnings shown of one issued as if from `module` in site-packages."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.warn_explicit(message, category, f"{SITE}{module.replace('.', '/')}.py", 1, module)
    return caught


def test_only_the_named_lines_are_silenced(monkeypatch):
    samples = [("torchdata.stateful_dataloader.stateful_dataloader", "'set_vital' is deprecated, please"),
               ("lightning.pytorch.utilities._pytree", "`isinstance(treespec, LeafSpec)` is deprecated, use"),
               ("lightning.pytorch.cli", "\n    ``instantiate_classes`` was deprecated in v4.49.0 and will"),
               ("lightning.pytorch.cli", "LightningCLI's args parameter is intended to run from within"),
               ("optuna._experimental", "Argument ``heartbeat_interval`` is an experimental feature.")]
    named = [item for item in SILENCED if isinstance(item, Warned)]
    assert len(named) == len(samples)
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "", None, None)
    with quieted():
        for item, (module, message) in zip(named, samples):
            assert not warns(item.category, module, message), item
            assert warns(item.category, "somepackage", message), f"a blanket filter by message: {item}"
            assert warns(item.category, module, "a new warning"), f"a blanket filter by module: {item}"
        assert warns(DeprecationWarning, "datamodules.cells", "a deprecation of ours")
        transformers_log, tip = (logging.getLogger(name) for name in dict.fromkeys(
            item.logger for item in SILENCED if isinstance(item, Logged)))
        for message, shown in (("Bert LOAD REPORT\nclassifier.bias | MISSING", False),
                               ("Bert LOAD REPORT\nclassifier.bias | MISMATCH", True),
                               ("This checkpoint seem corrupted. The tied weights mapping for this model "
                                "specifies to tie cls.predictions.bias to ...", False),
                               ("another line of transformers", True)):
            record.msg = message
            assert transformers_log.filter(record) is shown, message
        record.msg = "💡 Tip: For seamless cloud logging"
        assert not tip.filter(record)
        assert not datasets.is_progress_bar_enabled()
        with progress_if_long(20_000):
            assert datasets.is_progress_bar_enabled()
        with progress_if_long(300):
            assert not datasets.is_progress_bar_enabled()
    monkeypatch.setenv(VERBOSE, "1")
    with quieted():  # everything shows
        assert warns(named[0].category, *samples[0])
        assert datasets.is_progress_bar_enabled()
