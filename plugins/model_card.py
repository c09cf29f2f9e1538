"""The model card of an export (`hf_model/README.md`, `adapter/README.md`): huggingface_hub's
ModelCard from the template `plugins/model_card.md`, filled from what the CLI holds after fit (the
test metrics of the exported checkpoint, or the validation metrics it was saved with; its
monitored value), the run's resolved config, its TensorBoard events (the table of every
validation) and its best checkpoint (the optimizer's own settings). One card for classification,
MLM, LoRA (adapter card) and sweep trials."""

import importlib.metadata
import math
from pathlib import Path

import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from lightning import LightningModule, Trainer
from transformers import AutoConfig

from core.events import run_events, scalars
from core.pretrained import ALIASES, MINILM_ALIAS, from_pretrained
from datamodules.base import eval_batch_size
from deploy.card import section
from lightning_modules.base import parameter_counts
from lightning_modules.distill_settings import describe

HUB_IDS = {**ALIASES, MINILM_ALIAS: "sentence-transformers/all-MiniLM-L6-v2"}
METRIC_TYPES = {"acc": "accuracy", "f1": "f1", "loss": "loss", "perplexity": "perplexity"}
COLUMNS = {"acc": "Accuracy", "f1": "F1 (macro)", "perplexity": "Perplexity"}
TEMPLATE = Path(__file__).with_name("model_card.md")
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
             # from the config: a DDP run's main process holds no data module after fit
             f"eval_batch_size: {eval_batch_size(data)}",
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
    if model.get("keep_layers"):
        lines.append(f"encoder layers kept of the backbone's: {model.keep_layers}")
    return lines


def origin(base_link: str, model) -> str:
    """What the model is of its backbone: fine-tuned, or first cut to some of its encoder layers
    (`--model.keep_layers`), said as such: how many of how many, and which."""
    kept = model.get("keep_layers")
    if not kept:
        return f"a fine-tuned version of {base_link}"
    layers = from_pretrained(AutoConfig, model.backbone, "model config",
                             trust_remote_code=model.get("trust_remote_code", False)).num_hidden_layers
    return (f"{len(kept)} of the {layers} encoder layers of {base_link} (layers {', '.join(map(str, kept))}, "
            "0-based), cut from it and then fine-tuned")


def distillation(model, test: dict) -> str | None:
    """What the card says of a distilled student: its teacher, the losses, and how close to the
    teacher it came on the test texts."""
    if not model.get("teacher"):
        return None
    text = describe(model.teacher, model.get("distill"))
    if "test/teacher_acc" in test:
        text += (f" On the same test texts the teacher's accuracy is {test['test/teacher_acc']:.4f}, and the "
                 f"student gives the teacher's label to {100 * test['test/agreement']:.1f}% of them.")
    return text


def exported_results(checkpoint, test: dict, metrics: list[str]) -> tuple[str, dict[str, float]]:
    """(split, {metric: value}) of the exported checkpoint, as the CLI holds them after fit: its
    test metrics where the run tested it, else the validation metrics it was saved with."""
    found = {name: float(test[f"test/{name}"]) for name in ["loss", *metrics] if f"test/{name}" in test}
    if found:
        return "test", found
    saved = getattr(checkpoint, "saved_metrics", {}).get(checkpoint.best_model_path, {}) if checkpoint else {}
    return "validation", {name: saved[f"val/{name}"] for name in ["loss", *metrics] if f"val/{name}" in saved}


def fresh_run_options(config) -> str:
    """What the Reproduce line adds so that a resumed run's config starts a new run in a new
    folder instead of resuming into the old one."""
    logger = config.trainer.logger
    resumed = config.get("ckpt_path") or (logger and logger.init_args.get("version") is not None)
    return " --ckpt_path null --trainer.logger.init_args.version null" if resumed else ""


def write_model_cards(run_dir: Path, config, trainer: Trainer, module: LightningModule, test: dict,
                      export_dirs: list[Path], repo_id: str | None = None) -> list[Path]:
    """README.md in each export folder, from `plugins/model_card.md`; returns their paths."""
    mlm = type(module).__name__ == "MaskedLanguageModel"
    metrics = ["perplexity", "acc"] if mlm else ["acc", "f1"]
    checkpoint = trainer.checkpoint_callback
    split, scores = exported_results(checkpoint, test, metrics)
    best_val = ((checkpoint.monitor, float(checkpoint.best_model_score))
                if checkpoint is not None and checkpoint.best_model_score is not None else None)
    model, data = config.model.init_args, config.data.init_args
    base = base_model(model.backbone)
    hub_dataset, dataset_name = dataset_of(data)
    task = "fill-mask" if mlm else "text-classification"
    total, trainable = parameter_counts(module.model)  # the exported model (no distillation projection)
    lora = model.get("lora")
    name = repo_id.split("/")[-1] if repo_id else run_name(run_dir)
    batches = trainer.num_training_batches
    steps_per_epoch = math.ceil(batches / trainer.accumulate_grad_batches) if math.isfinite(batches) else None
    saved = checkpoint.best_model_path or checkpoint.last_model_path if checkpoint is not None else ""
    base_name = base or f"a local model ({Path(model.backbone).name})"
    values = dict(
        name=name, dataset_name=dataset_name, task=task, trainable=trainable, total=total, split=split,
        origin=origin(f"[{base}](https://huggingface.co/{base})" if base else base_name, model),
        what="masked-language modelling" if mlm else f"{task} ({', '.join(data.label_names)})",
        method=(f"LoRA adapters of rank {lora.r} (the head trains in full)" if lora else
                f"full fine-tuning with the first {model.freeze_layers} layers frozen"
                if model.get("freeze_layers") else "full fine-tuning"),
        scores=[(COLUMNS.get(metric, metric.title()), value) for metric, value in scores.items()],
        best_val=best_val, head="AutoModelForMaskedLM" if mlm else "AutoModelForSequenceClassification",
        base_id=base or "<base model>", labels="" if mlm else f", num_labels={len(data.label_names)}",
        hyperparameters=hyperparameters(config, trainer, optimizer_settings(saved)),
        header=["Training Loss", "Epoch", "Step", "Validation Loss", *(COLUMNS[m] for m in metrics)],
        rows=validation_rows(run_events(run_dir), metrics, steps_per_epoch),
        distillation=distillation(model, test),
        recipe=", ".join(str(path) for path in config.get("config") or []) or "no config file",
        config_path=run_dir / "config.yaml", fresh=fresh_run_options(config),
        versions=[(package, importlib.metadata.version(package)) for package in FRAMEWORKS])
    paths = []
    for folder in export_dirs:
        adapter = folder.name != "hf_model" and lora is not None
        card_data = ModelCardData(
            base_model=base, library_name="peft" if adapter else "transformers", pipeline_tag=task,
            datasets=[hub_dataset] if hub_dataset else None, language=["en"], model_name=name,
            tags=["bert-lightning", "pytorch-lightning", *(["masked-lm"] if mlm else []),
                  *(["lora", "peft"] if lora else []), *(["distillation"] if model.get("teacher") else [])],
            eval_results=[EvalResult(task_type=task, dataset_type=hub_dataset or "local",
                                     dataset_name=dataset_name, dataset_split=split,
                                     metric_type=METRIC_TYPES[metric], metric_value=value,
                                     metric_name=f"{split} {metric}") for metric, value in scores.items()])
        card = ModelCard.from_template(card_data, template_path=str(TEMPLATE), adapter=adapter,
                                       where=repo_id or str(folder), onnx_section=section(folder), **values)
        path = folder / "README.md"
        card.save(path)
        paths.append(path)
    return paths
