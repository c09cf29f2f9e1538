"""LoRA adapters (peft) and layer freezing that mean the same thing on BERT, DistilBERT, TinyBERT."""

from dataclasses import dataclass

from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from torch import nn
from transformers import PreTrainedModel

from core.errors import UserError, at_least, check

# peft ships a default for BERT but none for DistilBERT; TinyBERT and MiniLM are `bert`.
DEFAULT_TARGETS = {"bert": ["query", "value"], "distilbert": ["q_lin", "v_lin"]}
LORA_BIAS = ("none", "all", "lora_only")


@dataclass
class LoraSettings:
    """LoRA on the attention projections; `lora: {}` in a config takes every default.

    Args:
        r: rank of the update matrices.
        alpha: scaling numerator (the update is scaled by alpha / r).
        dropout: dropout on the adapter input.
        target_modules: Linear module names to adapt; default `query`/`value` for BERT-type
            models, `q_lin`/`v_lin` for DistilBERT.
        bias: which biases train: `none`, `all` or `lora_only`.
        modules_to_save: extra modules trained in full and saved with the adapter (the
            classification head always is).
    """

    r: int = 8
    alpha: int = 16
    dropout: float = 0.1
    target_modules: list[str] | None = None
    bias: str = "none"
    modules_to_save: list[str] | None = None


def linear_names(model: nn.Module) -> list[str]:
    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules()
                   if isinstance(m, nn.Linear)})


def trained_heads(model: PreTrainedModel, fresh: list[str]) -> list[str]:
    """Modules that train in full beside LoRA: the task head, and the `fresh` modules the
    checkpoint lacked (BERT's pooler after an MLM export), which would otherwise stay random."""
    heads = {name for name, child in model.named_children()
             if name != model.base_model_prefix and any(True for _ in child.parameters())}
    return sorted(heads | set(fresh))


def check_lora(lora: LoraSettings) -> None:
    at_least("--model.lora.r", lora.r, 1)
    check("--model.lora.alpha", lora.alpha, lora.alpha > 0, "a positive number")
    check("--model.lora.dropout", lora.dropout, 0 <= lora.dropout < 1, "a probability in [0, 1)")
    check("--model.lora.bias", lora.bias, lora.bias in LORA_BIAS, f"one of {', '.join(LORA_BIAS)}")


def add_lora(model: PreTrainedModel, lora: LoraSettings, heads: list[str],
             task_type: TaskType | None) -> PeftModel:
    check_lora(lora)
    model_type = model.config.model_type
    targets = lora.target_modules or DEFAULT_TARGETS.get(model_type)
    if not targets:
        raise UserError(f"no default LoRA targets for model type '{model_type}'; set "
                        f"--model.lora.target_modules from {linear_names(model)}")
    available = linear_names(model)
    for target in targets:
        if target not in available:
            raise UserError(f"LoRA target '{target}' matches no Linear module of this "
                            f"{model_type} backbone; Linear modules are {available}")
    config = LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets,
        bias=lora.bias, modules_to_save=heads + (lora.modules_to_save or []) or None,
        task_type=task_type,
    )
    return get_peft_model(model, config)


def body(model: nn.Module) -> nn.Module:
    """The model without its task head (`bert`, `distilbert`, ...), found through peft wrappers too."""
    hf_model = model.get_base_model() if isinstance(model, PeftModel) else model
    return hf_model.base_model


def encoder_stack(model: nn.Module) -> nn.Module:
    """`bert.encoder` or `distilbert.transformer`, found through peft wrappers too."""
    encoder = body(model)
    for stack in (getattr(encoder, "encoder", None), getattr(encoder, "transformer", None)):
        if stack is not None and isinstance(getattr(stack, "layer", None), nn.ModuleList):
            return stack
    raise UserError(f"cannot find the encoder layers of a {type(encoder).__name__}")


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """`bert.encoder.layer` or `distilbert.transformer.layer`."""
    return encoder_stack(model).layer


def freeze(model: nn.Module, embeddings: bool, layers: int) -> None:
    """Stop gradients to the embeddings and/or the first `layers` encoder layers (adapters included)."""
    stack = encoder_layers(model)
    if not 0 <= layers <= len(stack):
        raise UserError(f"freeze_layers={layers} but this backbone has {len(stack)} encoder layers")
    frozen = list(stack[:layers])
    if embeddings:
        frozen.append(body(model).embeddings)
    for module in frozen:
        module.requires_grad_(False)


def prepare(model: PreTrainedModel, lora: LoraSettings | None, freeze_embeddings: bool,
            freeze_layers: int, heads: list[str], task_type: TaskType | None) -> nn.Module:
    """The backbone as configured: LoRA-wrapped if asked, then frozen where asked."""
    if lora is not None:
        model = add_lora(model, lora, heads, task_type)
    freeze(model, freeze_embeddings, freeze_layers)
    return model
