"""What every benchmark shares: options, the device and its clock, medians, the markdown table it
prints, the JSON it writes (with the machine and versions it ran on), and this project's Trainer
defaults, so that a benchmark of "this project's loop" runs what a real run runs."""

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import lightning
import torch
import transformers
import yaml
from lightning.pytorch.cli import instantiate_class

from core.cpu_precision import cpu_name

RESULTS = Path("benchmarks/results")
DEFAULTS = Path(__file__).resolve().parents[1] / "configs" / "defaults.yaml"

# The options more than one script takes, so that each means the same everywhere: (type, help).
OPTIONS = {
    "seed": (int, "seed of the weights, the batches and the data order"),
    "data_dir": (str, "local IMDB copy (split files or aclImdb folders); default: the hub"),
    "max_length": (int, "tokens per review at most"),
    "batch_size": (int, "texts per batch"),
    "steps": (int, "steps per run"),
}


def parser(doc: str, out: str | None, **shared) -> argparse.ArgumentParser:
    """An argument parser described by the script's docstring, with `--out` (the JSON file;
    None: the script names it after its options) and the `OPTIONS` named in `shared`, each with
    this script's default; the script adds its own."""
    options = argparse.ArgumentParser(description=doc.splitlines()[0],
                                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    options.add_argument("--out", default=out, help="JSON file to write")
    for name, default in shared.items():
        kind, text = OPTIONS[name]
        options.add_argument(f"--{name}", type=kind, default=default, help=text)
    return options


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Timer:
    """Seconds from `start` to `stop`, or around a `with` block. On a GPU both ends wait for the
    queued work, or the clock would time only its launch."""

    def __init__(self, where: torch.device | None = None):
        self.where = where or device()
        self.started = self.seconds = 0.0

    def sync(self) -> None:
        if self.where.type == "cuda":
            torch.cuda.synchronize(self.where)

    def start(self) -> None:
        self.sync()
        self.started = time.perf_counter()

    def stop(self) -> float:
        self.sync()
        self.seconds = time.perf_counter() - self.started
        return self.seconds

    def __enter__(self) -> "Timer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def median_ms(seconds: list[float]) -> float:
    return 1000 * statistics.median(seconds)


def machine(where: torch.device | None = None) -> str:
    where = where or device()
    if where.type == "cuda":
        return torch.cuda.get_device_name(where)
    return f"CPU {cpu_name()}, {torch.get_num_threads()} threads"


def layers_of(model_dir: str | Path) -> int:
    return json.loads((Path(model_dir) / "config.json").read_text())["num_hidden_layers"]


def table(header: list[str], rows: list[list]) -> str:
    """A markdown table."""
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(str(cell) for cell in line) + " |" for line in lines)


def write_report(out: str | Path, report: dict) -> None:
    """`report` as JSON at `out`, with the machine and library versions it was measured with."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    environment = {"device": machine(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
                   "torch": torch.__version__, "cuda": torch.version.cuda,
                   "transformers": transformers.__version__, "lightning": lightning.__version__}
    path.write_text(json.dumps({**environment, **report}, indent=2, default=str) + "\n")
    print(f"\nwrote {path}")


def trainer_defaults() -> dict:
    """The `trainer` section of configs/defaults.yaml, which every run of this project starts from."""
    return yaml.safe_load(DEFAULTS.read_text())["trainer"]


def default_callbacks(leave_out: tuple[type, ...]) -> list[lightning.Callback]:
    """The callbacks configs/defaults.yaml gives every run, less the `leave_out` kinds: built from
    that file, so that the benchmarks keep measuring what a real run does when the file changes."""
    callbacks = [instantiate_class((), entry) for entry in trainer_defaults()["callbacks"]]
    return [callback for callback in callbacks if not isinstance(callback, leave_out)]
