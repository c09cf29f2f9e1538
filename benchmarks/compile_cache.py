"""What `--model.compile true` costs on a first run and on a second one that finds the compile cache.

Three short fits of the quickstart (bundled MiniLM, packed batches), each in a fresh process:
eager, compiled with an empty cache, compiled again with the cache the first one filled. The
compile time of a run is its wall time minus the eager run's.

    python benchmarks/compile_cache.py
"""

import os
import subprocess
import sys
from pathlib import Path
from tempfile import TemporaryDirectory

from benchmarks.common import RESULTS, Timer, parser, table, write_report

ROOT = Path(__file__).resolve().parents[1]


def fit_seconds(workdir: Path, name: str, compile: bool, steps: int, cache: Path) -> float:
    command = [sys.executable, str(ROOT / "train.py"), "fit",
               "--config", str(ROOT / "configs" / "quickstart.yaml"),
               "--model.compile", str(compile).lower(), "--trainer.max_steps", str(steps),
               "--trainer.limit_val_batches", "0", "--test_after_fit", "false",
               "--data.cache_dir", str(workdir / "data"),
               "--trainer.logger.init_args.save_dir", str(workdir / "logs"),
               "--trainer.logger.init_args.name", name]
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"}
    with Timer() as run:
        done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"error: the {name} run failed:\n{done.stderr[-3000:]}")
    return run.seconds


def main() -> None:
    args = parser(__doc__, str(RESULTS / "compile_cache.json"), steps=20).parse_args()
    with TemporaryDirectory() as tmp:
        workdir, cache = Path(tmp), Path(tmp) / "inductor"
        fit_seconds(workdir, "tokenize", False, 1, cache)  # the data cache, so no run pays for it
        runs = {name: fit_seconds(workdir, name, compile, args.steps, cache)
                for name, compile in (("eager", False), ("compiled, empty cache", True),
                                      ("compiled, warm cache", True))}
    eager = runs["eager"]
    print(f"\nquickstart (MiniLM, packed batches), {args.steps} steps per run, one process each\n")
    print(table(["run", "wall time", "compile time (vs eager)"],
                [[name, f"{seconds:.1f} s", f"{seconds - eager:+.1f} s"] for name, seconds in runs.items()]))
    write_report(args.out, {"steps": args.steps, "runs_s": runs})


if __name__ == "__main__":
    main()
