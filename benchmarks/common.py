"""What every benchmark shares: options, the device and its clock, medians, the markdown table it
prints and the JSON it writes (with the machine it ran on)."""

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # benchmarks use local or bundled models only

RESULTS = Path("benchmarks/results")


def parser(doc: str, out: str | None) -> argparse.ArgumentParser:
    """An argument parser described by the script's docstring, with `--out` (the JSON file;
    None: the script names it after its options)."""
    options = argparse.ArgumentParser(description=doc.splitlines()[0],
                                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    options.add_argument("--out", default=out, help="JSON file to write")
    return options


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync(where: torch.device) -> None:
    """Waits for queued GPU work, so a clock read after it is the work's real end."""
    if where.type == "cuda":
        torch.cuda.synchronize(where)


def timed(fn: Callable[[], object], where: torch.device | None = None) -> float:
    """Seconds `fn()` takes, GPU work included."""
    where = where or device()
    sync(where)
    start = time.perf_counter()
    fn()
    sync(where)
    return time.perf_counter() - start


def median_ms(seconds: list[float]) -> float:
    return 1000 * statistics.median(seconds)


def machine(where: torch.device | None = None) -> str:
    where = where or device()
    if where.type == "cuda":
        return torch.cuda.get_device_name(where)
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def table(header: list[str], rows: list[list]) -> str:
    """A markdown table."""
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(str(cell) for cell in line) + " |" for line in lines)


def write_report(out: str | Path, report: dict) -> None:
    """`report` as JSON at `out`, with the machine and library versions it was measured with."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    environment = {"machine": machine(), "torch": torch.__version__, "cpu_count": os.cpu_count()}
    path.write_text(json.dumps({**environment, **report}, indent=2, default=str) + "\n")
    print(f"\nwrote {path}")
