"""The runs `distill.py` measures, each this project's own `train.py fit` in this process, and one
scoring for every model: accuracy and prediction throughput on the same test texts."""

import gc
import json
import shutil
import statistics
from pathlib import Path

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device

from benchmarks.common import Timer, device
from benchmarks.loops import autocast_dtype
from core.events import run_events, scalars
from datamodules.ag_news import AGNewsDataModule
from lightning_modules.classification import SequenceClassifier
from lightning_modules.distill_student import uniform_map
from train import main

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "ag_news" / "distilbert.yaml")
OVERLAY = str(Path(__file__).resolve().parents[1] / "configs" / "overlays" / "distill.yaml")
VARIANTS = {"labels": "labels only (no teacher)", "logits": "+ logits (KL at T=2, cached)",
            "hidden": "+ logits + hidden states (MSE)",
            "unlabelled": "+ logits, + unused rows the teacher labels"}


def variant_args(variant: str, teacher: str, args) -> list[str]:
    """What a variant adds to the fit of a student cut from the teacher."""
    if variant == "labels":
        return []
    more = {"logits": [], "hidden": ["--model.distill.hidden_weight", "1"],
            "unlabelled": ["--data.unlabelled", "unused",
                           "--data.limit_unlabelled_samples", str(args.unlabelled)]}
    return ["--config", OVERLAY, "--model.teacher", teacher, *more[variant]]


def fit(args, workdir: Path, name: str, seed: int, *extra: str) -> dict:
    """One run, exporting its final weights (no validation, no checkpoints: every model is scored
    on the test texts after its last epoch): its folder, its epochs' seconds, the training texts/s
    of each logging window and the teacher's share of a step."""
    cli = main(["fit", "--config", CONFIG, "--data.data_dir", args.data_dir,
                "--data.max_length", str(args.max_length), "--data.batch_size", str(args.batch_size),
                "--data.limit_train_samples", str(args.train), "--data.limit_test_samples", str(args.test),
                "--data.cache_dir", args.cache_dir, "--model.learning_rate", str(args.learning_rate),
                "--trainer.max_epochs", str(args.epochs), "--trainer.precision", args.precision,
                "--trainer.limit_val_batches", "0", "--trainer.enable_checkpointing", "false",
                "--trainer.log_every_n_steps", str(args.log_every_n_steps),
                "--seed_everything", str(seed), "--test_after_fit", "false",
                "--trainer.enable_progress_bar", "false", "--trainer.logger.init_args.save_dir", str(workdir),
                "--trainer.logger.init_args.name", name, *extra])
    folder = Path(cli.trainer.log_dir)
    events = run_events(folder)
    shares = [share for _, share in scalars(events, "distill/teacher_share")]
    del cli
    gc.collect()
    return {"folder": folder, "epoch_s": [round(s, 1) for _, s in scalars(events, "time/epoch_s")],
            "texts_per_s": [rate for _, rate in scalars(events, "throughput/samples_per_sec")],
            "teacher_share": round(statistics.mean(shares), 3) if shares else None}


def test_data(args, tokenizer: str) -> AGNewsDataModule:
    """The test texts every model is scored on (the runs' own: same rows, same tokenization)."""
    dm = AGNewsDataModule(tokenizer=tokenizer, data_dir=args.data_dir, max_length=args.max_length,
                          eval_batch_size=64, limit_train_samples=args.train, limit_test_samples=args.test,
                          num_workers=0, cache_dir=args.cache_dir)
    dm.prepare_data()
    dm.setup("test")
    return dm


@torch.no_grad()
def predict_pass(module: SequenceClassifier, dm: AGNewsDataModule, precision: str) -> tuple[float, float]:
    """(test accuracy, seconds) of one pass over the test texts on this project's predict path:
    packed batches of 64, eval, no gradients, autocast as `precision` says."""
    where, half = device(), autocast_dtype(precision)
    correct = 0
    with Timer(where) as timer, torch.autocast(where.type, dtype=half, enabled=half is not None):
        for batch in dm.test_dataloader():
            batch = move_data_to_device(batch, where)
            correct += int((module(batch).argmax(-1) == batch["labels"]).sum())
    return correct / len(dm.splits["test"]), timer.seconds


def loaded(model_dir: Path, dm: AGNewsDataModule) -> SequenceClassifier:
    return SequenceClassifier(str(model_dir), dm.label_names).eval().to(device())


def parameters(module: SequenceClassifier) -> int:
    return sum(p.numel() for p in module.model.parameters())


def score(model_dir: Path, dm: AGNewsDataModule, precision: str) -> dict:
    """A classifier folder's test accuracy and parameters."""
    module = loaded(model_dir, dm)
    return {"test_accuracy": predict_pass(module, dm, precision)[0], "params": parameters(module)}


def speeds(models: dict[str, Path], dm: AGNewsDataModule, precision: str, repeats: int = 3) -> dict:
    """Prediction throughput (test texts/s) of each model: an untimed pass each (first calls
    allocate), then `repeats` timed rounds taking the models in turn, so that a change in the
    machine's load falls on all of them; each model's fastest pass counts."""
    modules = {name: loaded(folder, dm) for name, folder in models.items()}
    for module in modules.values():
        predict_pass(module, dm, precision)
    seconds = {name: [] for name in modules}
    for _ in range(repeats):
        for name, module in modules.items():
            seconds[name].append(predict_pass(module, dm, precision)[1])
    texts = len(dm.splits["test"])
    return {name: {"texts_per_s": round(texts / min(times), 1), "seconds": [round(t, 2) for t in times],
                   "params": parameters(modules[name])} for name, times in seconds.items()}


def layers_of(model_dir: str) -> int:
    return json.loads((Path(model_dir) / "config.json").read_text())["num_hidden_layers"]


def student_runs(args, workdir: Path, teacher: str, dm: AGNewsDataModule) -> tuple[list[dict], dict]:
    """Every student (cut to the layers its uniform map names), variant and seed, scored, and the
    export of each student's first run kept for timing (by depth); each run's folder is removed
    once scored."""
    runs, kept = [], {}
    for depth in args.students:
        cut = uniform_map(depth, layers_of(teacher))
        for seed in range(1, args.seeds + 1):
            for variant in args.variants:
                name = f"student{depth}-{variant}-seed{seed}"
                run = fit(args, workdir, name, seed, "--model.backbone", teacher,
                          "--model.keep_layers", str(cut), *variant_args(variant, teacher, args))
                scored = score(run["folder"] / "hf_model", dm, args.precision)
                print(f"{name}: test accuracy {scored['test_accuracy']:.4f}, epochs {run['epoch_s']} s",
                      flush=True)
                runs.append({"student": depth, "layers": cut, "variant": variant, "seed": seed,
                             **{k: v for k, v in run.items() if k != "folder"}, **scored})
                if depth not in kept:
                    kept[depth] = shutil.move(run["folder"] / "hf_model", workdir / f"student{depth}")
                shutil.rmtree(run["folder"])
    return runs, kept


def attention_cost(args, workdir: Path, teacher: str, steps: int) -> dict:
    """Seconds per training step of the first student with the hidden-state loss, then with the
    attention-score loss beside it (scores rebuilt per text for the mapped layers): from the
    logging windows after the first, which holds the loader's and the first step's start-up."""
    depth = args.students[0]
    cut = str(uniform_map(depth, layers_of(teacher)))
    timed = {}
    for name, more in (("hidden", []), ("hidden+attention", ["--model.distill.attention_weight", "1"])):
        run = fit(args, workdir, f"student{depth}-{name}-timing", 1, "--model.backbone", teacher,
                  "--model.keep_layers", cut, "--config", OVERLAY, "--model.teacher", teacher,
                  "--model.distill.hidden_weight", "1", *more, "--trainer.max_epochs", "1",
                  "--trainer.limit_train_batches", str(steps))
        rates = run["texts_per_s"][1:] or run["texts_per_s"]
        timed[name] = round(args.batch_size / statistics.mean(rates), 3)
        shutil.rmtree(run["folder"])
    return {"student": depth, "steps": steps, "step_s": timed,
            "attention_extra": round(timed["hidden+attention"] / timed["hidden"] - 1, 3)}
