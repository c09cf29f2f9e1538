"""The runs `distill.py` measures, each this project's own `train.py fit` in this process, and one
scoring for every model: its prediction for each test text, and prediction throughput on them."""

import gc
import logging
import shutil
import time
from pathlib import Path

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device

from benchmarks.common import Timer, device
from datamodules.imdb import IMDBDataModule
from lightning_modules.classification import SequenceClassifier
from train import main

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "imdb" / "distilbert.yaml")
OVERLAY = str(ROOT / "configs" / "overlays" / "distill.yaml")
RECIPES = {
    "labels": "labels only (no teacher)",
    "control": "labels only, as many steps as with the unlabelled reviews",
    "logits": "+ teacher's logits (KL, T=2)",
    "unlabelled": "+ logits, + unlabelled reviews the teacher labels",
    "tinybert": "+ logits, + unlabelled, TinyBERT's stage 1 first (hidden-state and attention-score MSE)",
    "minilm": "+ logits, + unlabelled, MiniLM's stage 1 first (attention and value-relation KL)",
}


class TeacherPass(logging.Handler):
    """The seconds of the teacher's pass over the training texts, as `datamodules.teacher_logits`
    logs them when it computes (rather than reads) the cached logits."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.seconds = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("teacher logits") and "computed" in record.msg:
            self.seconds = round(record.args[1], 1)


def recipe_args(recipe: str, teacher: str, unlabelled: str, epochs: int, control_epochs: int) -> list[str]:
    """What a recipe adds to a student's fit: the teacher, the losses and the texts, each over
    `epochs` epochs; `control` is labels only for `control_epochs`, as many steps as the recipes
    with the unlabelled texts take. TinyBERT's and MiniLM's losses train in their own first stage
    (one epoch), the labels and logits after it, as both papers train them."""
    if recipe in ("labels", "control"):
        return ["--trainer.max_epochs", str(epochs if recipe == "labels" else control_epochs)]
    distil = ["--config", OVERLAY, "--model.teacher", teacher, "--trainer.max_epochs", str(epochs)]
    if recipe == "logits":
        return distil
    stage = ["--model.distill.intermediate_epochs", "1"]
    more = {"unlabelled": [],
            "tinybert": [*stage, "--model.distill.hidden_weight", "1",
                         "--model.distill.attention_weight", "1"],
            "minilm": [*stage, "--model.distill.minilm_weight", "1"]}[recipe]
    return [*distil, "--data.unlabelled", unlabelled, *more]


def fit(args, data_dir: str, workdir: Path, name: str, seed: int, *extra: str) -> dict:
    """One run (no validation, no checkpoints, no test: every model is scored afterwards on the
    same texts): its export folder, whole-fit seconds, steps, and the teacher's pass if it ran."""
    teacher_pass = TeacherPass()
    logger = logging.getLogger("datamodules.teacher_logits")
    logger.setLevel(logging.INFO)
    logger.addHandler(teacher_pass)
    started = time.perf_counter()
    try:
        cli = main(["fit", "--config", CONFIG, "--data.data_dir", data_dir,
                    "--data.max_length", str(args.max_length), "--data.batch_size", str(args.batch_size),
                    "--data.cache_dir", args.cache_dir, "--data.seed", str(seed),
                    "--seed_everything", str(seed),
                    "--trainer.precision", args.precision, "--trainer.limit_val_batches", "0",
                    "--trainer.enable_checkpointing", "false", "--test_after_fit", "false",
                    "--trainer.enable_progress_bar", "false",
                    "--trainer.logger.init_args.save_dir", str(workdir / "runs"),
                    "--trainer.logger.init_args.name", name, *extra])
    finally:
        logger.removeHandler(teacher_pass)
    seconds = time.perf_counter() - started
    folder, steps = Path(cli.trainer.log_dir), cli.trainer.global_step
    del cli
    gc.collect()
    return {"folder": folder, "fit_s": round(seconds, 1), "steps": steps,
            "teacher_pass_s": teacher_pass.seconds}


def test_data(args, data_dir: str, tokenizer: str) -> IMDBDataModule:
    """The test texts every model is scored on, tokenized as the runs tokenize them."""
    dm = IMDBDataModule(tokenizer=tokenizer, data_dir=data_dir, max_length=args.max_length,
                        eval_batch_size=64, num_workers=0, cache_dir=args.cache_dir)
    dm.prepare_data()
    dm.setup("test")
    return dm


def loaded(model_dir: Path, dm: IMDBDataModule) -> SequenceClassifier:
    return SequenceClassifier(str(model_dir), dm.label_names).eval().to(device())


@torch.no_grad()
def predict_pass(module: SequenceClassifier, dm: IMDBDataModule) -> tuple[str, float]:
    """(the predicted label of each test text, in order, as a string of digits; seconds) of one
    pass on this project's predict path: packed batches of 64, eval, no gradients, fp32."""
    where, labels = device(), []
    with Timer(where) as timer:
        for batch in dm.test_dataloader():
            labels += module(move_data_to_device(batch, where)).argmax(-1).tolist()
    return "".join(map(str, labels)), timer.seconds


def score(model_dir: Path, dm: IMDBDataModule) -> dict:
    module = loaded(model_dir, dm)
    predictions, _ = predict_pass(module, dm)
    return {"predictions": predictions, "params": sum(p.numel() for p in module.model.parameters())}


def speeds(models: dict[str, Path], dm: IMDBDataModule, repeats: int = 3) -> dict:
    """Prediction throughput (test texts/s) of each model: an untimed pass each (first calls
    allocate), then `repeats` timed rounds taking the models in turn, so that a change in the
    machine's load falls on all of them; each model's fastest pass counts."""
    modules = {name: loaded(folder, dm) for name, folder in models.items()}
    for module in modules.values():
        predict_pass(module, dm)
    seconds = {name: [] for name in modules}
    for _ in range(repeats):
        for name, module in modules.items():
            seconds[name].append(predict_pass(module, dm)[1])
    texts = len(dm.splits["test"])
    return {name: {"texts_per_s": round(texts / min(times), 1), "seconds": [round(t, 2) for t in times]}
            for name, times in seconds.items()}


def keep_export(run: dict, where: Path) -> Path:
    """The run's export moved to `where` (replacing any), its run folder removed."""
    if where.exists():
        shutil.rmtree(where)
    shutil.move(run["folder"] / "hf_model", where)
    shutil.rmtree(run["folder"])
    return where
