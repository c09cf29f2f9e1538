"""The one place that names what the console leaves out, and why: third-party lines that say nothing
about the run (deprecations inside our dependencies, advertisements, a report our own line repeats).
Each is matched by where it comes from and what it says, never by category alone, so a new warning
from our code or from a dependency still shows. `BERT_LIGHTNING_VERBOSE=1` shows everything."""

import logging
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import datasets
from optuna.exceptions import ExperimentalWarning
from transformers.utils import logging as transformers_logging

VERBOSE = "BERT_LIGHTNING_VERBOSE"
LONG_WORK_ROWS = 10_000  # datasets' progress bars show for work on more rows than this


@dataclass(frozen=True)
class Warned:
    """A Python warning: its category, the module it is attributed to and its message's start
    (regexes, as `warnings.filterwarnings` takes them)."""
    category: type[Warning]
    module: str
    message: str
    reason: str

    def silence(self) -> None:
        warnings.filterwarnings("ignore", self.message, self.category, self.module)


@dataclass(frozen=True)
class Logged:
    """A log record of one logger whose message holds `text` and none of `unless`."""
    logger: str
    text: str
    reason: str
    unless: tuple[str, ...] = ()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return self.text not in message or any(word in message for word in self.unless)

    def silence(self) -> None:
        logging.getLogger(self.logger).addFilter(self)  # a filter already there is not added twice


@dataclass(frozen=True)
class TransformersBar:
    """A progress bar of transformers, by its description."""
    desc: str
    reason: str

    def silence(self) -> None:
        _quiet_bars.add(self.desc)
        transformers_logging.set_tqdm_hook(_transformers_tqdm)


@dataclass(frozen=True)
class DatasetsBars:
    """All of datasets' progress bars; `progress_if_long` brings them back for long work."""
    reason: str

    def silence(self) -> None:
        if datasets.config.HF_DATASETS_DISABLE_PROGRESS_BARS is None:  # else that variable decides
            datasets.disable_progress_bars()


_quiet_bars: set[str] = set()


def _transformers_tqdm(factory, args, kwargs):
    return factory(*args, **{**kwargs, "disable": kwargs.get("desc") in _quiet_bars or kwargs.get("disable")})


SILENCED = (
    Warned(UserWarning, r"torchdata\.stateful_dataloader", "'set_vital' is deprecated",
           "torchdata 0.11's StatefulDataLoader calls torch.set_vital, a no-op torch deprecated: "
           "every loader of every run printed it, and only torchdata can change it"),
    Warned(FutureWarning, r"lightning\.", r"`isinstance\(treespec, LeafSpec\)` is deprecated",
           "Lightning 2.6 builds torch's deprecated LeafSpec when it moves a batch; every loop "
           "printed it, and only Lightning can change it"),
    Warned(DeprecationWarning, r"lightning\.pytorch\.cli",
           r"(?s)\s*(.*deprecated in v4\.49|By default only one JsonargparseDeprecationWarning)",
           "LightningCLI 2.6 calls jsonargparse APIs deprecated in 4.49 (instantiate_classes, "
           "skip_none, add_instantiator); only Lightning can change it"),
    Warned(UserWarning, r"lightning\.pytorch\.cli", "LightningCLI's args parameter is intended",
           "sweep.py runs each trial as train.main(args) in a process whose sys.argv holds the "
           "sweep's own options: both are given on purpose, and every trial printed it"),
    Warned(ExperimentalWarning, r"(sweeps|optuna)\.",
           r"(RetryHeartbeatStaleTrialCallback|Argument ``(heartbeat_interval|grace_period)``|"
           r".*fail_stale_trials) is (an )?experimental",
           "Optuna marks its heartbeats and the retry of a dead worker's trial, which sweeps rely on, "
           "experimental since v2.8: each sweep printed three such lines"),
    Logged("transformers.modeling_utils", "LOAD REPORT",
           "transformers 5 logs a table of the weights a checkpoint lacks or leaves unused at every "
           "load; core.pretrained refuses a missing body weight, and our next line names the head "
           "created fresh. A report with a size mismatch or a conversion error still shows: "
           "transformers' error that follows points to it",
           unless=("MISMATCH", "CONVERSION")),
    Logged("transformers.modeling_utils", "This checkpoint seem corrupted. The tied weights mapping",
           "an encoder saved without an MLM head (MiniLM, a sentence-transformers checkpoint) lacks both "
           "of the head's tied biases, so MLM on it starts the head fresh, as our own warning says; "
           "transformers calls that checkpoint corrupted, twice. A body weight that is missing is "
           "refused by core.pretrained"),
    Logged("lightning.pytorch.utilities.rank_zero", "💡 Tip:",
           "Lightning's advertisements for its cloud logger and model registry"),
    TransformersBar("Loading weights", "a bar over a BERT's 100 to 400 tensors, gone in a second; "
                    "downloads, which take long, keep theirs (huggingface_hub's)"),
    TransformersBar("Writing model shards", "the export's one shard, written in a second"),
    DatasetsBars(f"casting, splitting, saving or tokenizing a few thousand rows takes a second; "
                 f"tokenizing more than {LONG_WORK_ROWS:,} rows shows its bar"),
)


def verbose() -> bool:
    return os.environ.get(VERBOSE, "").strip().lower() not in ("", "0", "false", "no")


def quiet_console() -> None:
    """Silence what `SILENCED` names, unless `BERT_LIGHTNING_VERBOSE` is set. Called by the entry
    points before any work; idempotent."""
    if verbose():
        return
    for item in SILENCED:
        item.silence()


@contextmanager
def progress_if_long(rows: int):
    """datasets' progress bars for work on more than `LONG_WORK_ROWS` rows (tokenizing a corpus),
    where a bar tells how long is left; casting or saving a few hundred rows stays quiet."""
    show = (rows > LONG_WORK_ROWS and datasets.config.HF_DATASETS_DISABLE_PROGRESS_BARS is None
            and not datasets.is_progress_bar_enabled())
    if show:
        datasets.enable_progress_bars()
    try:
        yield
    finally:
        if show:
            datasets.disable_progress_bars()
