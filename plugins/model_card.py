"""The model card of an export (`hf_model/README.md`, `adapter/README.md`), written with
huggingface_hub's ModelCard from what the run recorded: its TensorBoard events (every validation,
the best checkpoint's test metrics), its resolved config and its best checkpoint (the optimizer's
own settings). So the card and TensorBoard agree, for resumed, LoRA, MLM and DDP runs alike."""

import importlib.metadata
import math
from pathlib import Path

import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from lightning import LightningModule, Trainer

from core.events import run_events, scalars
from core.pretrained import ALIASES, MINILM_ALIAS
from lightning_modules.base import parameter_counts

HUB_IDS = {**ALIASES, MINILM_ALIAS: "sentence-transformers/all-MiniLM-L6-v2"}
METRIC_TYPES = {"acc": "accuracy", "f1": "f1", "loss": "loss", "perplexity": "perplexity"}
COLUMNS = {"acc": "Accuracy", "f1": "F1 (macro)", "perplexity": "Perplexity"}
FRAMEWORKS = ("torch", "lightning", "transformers", "peft", "datasets", "tokenizers", "huggingface_hub")


def base_model(backbone: str) -> str | None:
    """The hub id the run started from; None for a local model folder."""
    name = HUB_IDS.get(backbone, backbone)
    return None if Path(name).expanduser().exists() or name.startswith((".", "/", "~")) else name


def dataset_of(data_hparams) -> tuple[str | None, str]:
    """(hub id or None, the name the card gives the data)."""
    data_dir, dataset = data_hparams.get("data_dir"), data_hparams.get("dataset")
    if data_dir:
        return None, f"local data ({Path(data_dir).name})"
    if dataset:
        return dataset, dataset
    return None, "generated reviews (datamodules/synthetic.py)"


def run_name(run_dir: Path) -> str:
    """The run folder's path under logs/ (or its last two parts), as one name: imdb-distilbert-version_0."""
    parts = run_dir.resolve().parts
    under_logs = parts[len(parts) - parts[::-1].index("logs"):] if "logs" in parts else ()
    return "-".join(under_logs or parts[-2:])


def validation_rows(events, metrics: list[str], steps_per_epoch: int | None) -> list[list[str]]:
    """One row per validation, as the run logged it: the training loss last logged by then."""
    train_loss = scalars(events, "train/loss")
    values = {name: dict(scalars(events, f"val/{name}")) for name in ["loss", *metrics]}
    rows = []
    for step in sorted(values["loss"]):
        before = [loss for s, loss in train_loss if s <= step]
        epoch = f"{step / steps_per_epoch:.2f}" if steps_per_epoch else "-"
        rows.append([f"{before[-1]:.4f}" if before else "No log", epoch, str(step),
                     f"{values['loss'][step]:.4f}",
                     *(f"{values[m][step]:.4f}" if step in values[m] else "-" for m in metrics)])
    return rows


def optimizer_settings(checkpoint: str) -> dict:
    """The optimizer's own hyperparameters, as saved in the checkpoint."""
    if not checkpoint:
        return {}
    state = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    groups = state.get("optimizer_states", [{}])[0].get("param_groups", [])
    return {"betas": tuple(groups[0]["betas"]), "eps": groups[0]["eps"],
            "weight_decay": sorted({g["weight_decay"] for g in groups}, reverse=True)} if groups else {}


def hyperparameters(config, trainer: Trainer, optimizer: dict) -> list[str]:
    model, data = config.model.init_args, config.data.init_args
    accumulate = trainer.accumulate_grad_batches
    lines = [f"learning_rate: {model.learning_rate:g}", f"train_batch_size: {data.batch_size}",
             f"eval_batch_size: {data.get('eval_batch_size') or data.batch_size}",
             f"gradient_accumulation_steps: {accumulate}",
             f"total_train_batch_size: {data.batch_size * accumulate * trainer.world_size}"
             f" ({trainer.world_size} device{'s' if trainer.world_size > 1 else ''})",
             f"seed: {config.seed_everything}"]
    if optimizer:
        decay = " and ".join(f"{w:g}" for w in optimizer["weight_decay"])
        lines.append(f"optimizer: AdamW with betas={optimizer['betas']} and epsilon={optimizer['eps']:g}, "
                     f"weight decay {decay} (none on biases and LayerNorm)")
    lines += [f"lr_scheduler_type: linear, warm-up over {model.get('warmup_ratio', 0):g} of the steps",
              f"num_epochs: {trainer.max_epochs}", f"training_steps: {trainer.global_step}",
              f"precision: {trainer.precision}",
              f"max_tokens: {data.get('max_length') or data.get('block_size')}",
              f"gradient_clip_val: {trainer.gradient_clip_val}"]
    if "packing" in data:
        lines.append(f"packed batches: {data.packing}")
    lora = model.get("lora")
    if lora:
        lines.append(f"LoRA: r={lora.r}, alpha={lora.alpha}, dropout={lora.dropout}, "
                     f"target modules {lora.target_modules or 'the architecture default (query/value)'}")
    if model.get("freeze_layers"):
        lines.append(f"frozen layers: the first {model.freeze_layers}")
    return lines


def results(events, test_prefix: str, metrics: list[str],
            best_step: int | None) -> tuple[str, dict[str, float]]:
    """(split, {metric: value}) of the exported checkpoint: its test metrics where the run tested
    it, else its validation metrics at the step it was saved."""
    tags = events.Tags()["scalars"]
    test = {name: scalars(events, f"{test_prefix}{name}")[-1][1] for name in ["loss", *metrics]
            if f"{test_prefix}{name}" in tags}
    if test:
        return "test", test
    found = {name: dict(scalars(events, f"val/{name}")).get(best_step) for name in ["loss", *metrics]}
    return "validation", {name: value for name, value in found.items() if value is not None}


def write_model_cards(run_dir: Path, config, trainer: Trainer, module: LightningModule,
                      export_dirs: list[Path], repo_id: str | None = None) -> list[Path]:
    """README.md in each export folder; returns their paths."""
    events = run_events(run_dir)
    mlm = type(module).__name__ == "MaskedLanguageModel"
    metrics = ["perplexity", "acc"] if mlm else ["acc", "f1"]
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None else ""
    monitor = checkpoint.monitor if checkpoint is not None else None
    best_logged = scalars(events, f"hp/best_{monitor.replace('/', '_')}") if monitor else []
    best_val = (monitor, best_logged[-1][1]) if best_logged else None
    # the validation the exported checkpoint was saved at: where its monitored value was logged
    best_step = next((step for step, value in reversed(scalars(events, monitor))
                      if value == best_val[1]), None) if best_val else None
    split, scores = results(events, "hp/test_", metrics, best_step)
    backbone = config.model.init_args.backbone
    base = base_model(backbone)
    hub_dataset, dataset_name = dataset_of(config.data.init_args)
    task = "fill-mask" if mlm else "text-classification"
    total, trainable = parameter_counts(module)
    lora = config.model.init_args.get("lora")
    name = repo_id.split("/")[-1] if repo_id else run_name(run_dir)
    batches = trainer.num_training_batches
    steps_per_epoch = math.ceil(batches / trainer.accumulate_grad_batches) if math.isfinite(batches) else None
    rows = validation_rows(events, metrics, steps_per_epoch)
    paths = []
    for folder in export_dirs:
        adapter = folder.name != "hf_model" and lora is not None
        data = ModelCardData(
            base_model=base, library_name="peft" if adapter else "transformers", pipeline_tag=task,
            datasets=[hub_dataset] if hub_dataset else None, language=["en"], model_name=name,
            tags=["bert-lightning", "pytorch-lightning", *(["masked-lm"] if mlm else []),
                  *(["lora", "peft"] if lora else [])],
            eval_results=[EvalResult(task_type=task, dataset_type=hub_dataset or "local",
                                     dataset_name=dataset_name, dataset_split=split,
                                     metric_type=METRIC_TYPES[metric], metric_value=value,
                                     metric_name=f"{split} {metric}") for metric, value in scores.items()])
        text = card_text(name, base or f"a local model ({Path(backbone).name})", dataset_name, task, mlm,
                         lora, config, trainable, total, split, scores, best_val, rows, metrics, trainer,
                         optimizer_settings(best or (checkpoint.last_model_path if checkpoint else "")),
                         folder, adapter, repo_id)
        path = folder / "README.md"
        ModelCard(f"---\n{data.to_yaml()}\n---\n{text}").save(path)
        paths.append(path)
    return paths


def card_text(name, base, dataset_name, task, mlm, lora, config, trainable, total, split, scores, best_val,
              rows, metrics, trainer, optimizer, folder, adapter, repo_id) -> str:
    model = config.model.init_args
    method = (f"LoRA adapters of rank {lora.r} (the head trains in full)" if lora else
              f"full fine-tuning with the first {model.freeze_layers} layers frozen"
              if model.get("freeze_layers") else "full fine-tuning")
    base_link = f"[{base}](https://huggingface.co/{base})" if "/" in base and not base.startswith("a local") \
        else base
    what = "masked-language modelling" if mlm else f"{task} ({', '.join(config.data.init_args.label_names)})"
    lines = [f"# {name}", "",
             f"This model is a fine-tuned version of {base_link} on {dataset_name}, for {what}, by {method}, "
             f"with bert-lightning (PyTorch Lightning). It trained {trainable:,} "
             f"of its {total:,} parameters.", "",
             f"It achieves the following results on the {split} set (the exported, best checkpoint):"]
    lines += [f"- {COLUMNS.get(metric, metric.title())}: {value:.4f}" for metric, value in scores.items()]
    if best_val is not None:
        lines += ["", f"Its {best_val[0]} on the validation set was {best_val[1]:.4f}, the best of the run."]
    where = repo_id or str(folder)
    lines += ["", "## How to use", "", "```python"]
    if adapter:
        head = "AutoModelForMaskedLM" if mlm else "AutoModelForSequenceClassification"
        labels = "" if mlm else f", num_labels={len(config.data.init_args.label_names)}"
        lines += ["from peft import PeftModel", f"from transformers import {head}", "",
                  f"base = {head}.from_pretrained(\"{base if '/' in base else '<base model>'}\"{labels})",
                  f"model = PeftModel.from_pretrained(base, \"{where}\")  # adapter and trained head"]
    else:
        lines += ["from transformers import pipeline", "",
                  f"model = pipeline(\"{task}\", model=\"{where}\")"]
    lines += ["```", "", "## Training procedure", "", "### Training hyperparameters", ""]
    lines += [f"- {line}" for line in hyperparameters(config, trainer, optimizer)]
    header = ["Training Loss", "Epoch", "Step", "Validation Loss", *(COLUMNS[m] for m in metrics)]
    lines += ["", "### Training results", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    recipe = ", ".join(str(path) for path in config.get("config") or []) or "no config file"
    lines += ["", "### Reproduce", "", "```bash",
              f"# every option of this run, resolved (its recipe: {recipe}, and the options given beside it)",
              f"python train.py fit --config {folder.parent / 'config.yaml'}", "```", "",
              "### Framework versions", ""]
    lines += [f"- {package}: {importlib.metadata.version(package)}" for package in FRAMEWORKS]
    return "\n".join(lines) + "\n"
