"""`--workers N`: N processes running the same sweep on one study, one GPU each where there are
GPUs; each is `sweep.py` itself with `--workers 1`, as a worker on another machine would be."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import torch

SWEEP_PY = Path(__file__).resolve().parents[1] / "sweep.py"


def worker_env(index: int) -> dict[str, str]:
    env = dict(os.environ)
    if torch.cuda.is_available():
        visible = env.get("CUDA_VISIBLE_DEVICES")
        devices = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
        env["CUDA_VISIBLE_DEVICES"] = devices[index % len(devices)]
    return env


def run_workers(args: list[str], workers: int, sampler_seed: int) -> int:
    """Starts the workers, passes SIGTERM and Ctrl-C on to them, and waits for all of them; the
    first non-zero exit status, else 0. Worker i seeds its sampler with sampler_seed + i: samplers
    seeded alike propose the same trials."""
    command = [sys.executable, str(SWEEP_PY), *args, "--workers=1", "--report=false"]
    children = [
        subprocess.Popen([*command, f"--sampler_seed={sampler_seed + i}"], env=worker_env(i))
        for i in range(workers)
    ]

    def forward(signum, frame) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        codes = [child.wait() for child in children]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return next((code for code in codes if code), 0)
