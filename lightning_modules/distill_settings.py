"""The options of a distillation (`--model.distill.*`), checked where they enter, and the sentence
a model card gives them."""

from dataclasses import dataclass, fields

from core.errors import UserError, at_least, check

LOSSES = ("label", "logit", "hidden", "attention", "minilm")
INTERMEDIATE = ("hidden", "attention", "minilm")  # the losses of the first of two stages


@dataclass
class DistillSettings:
    """What the student learns from its teacher (`--model.teacher`), each loss with its weight;
    `distill: {}` in a config takes every default.

    Args:
        label_weight: cross-entropy on the labels; a text without a label (`--data.unlabelled`)
            takes the teacher's.
        logit_weight: KL divergence from the teacher's softened logits to the student's, times
            temperature^2 (Hinton et al. 2015), so its gradients keep their size as T changes.
        temperature: divides both models' logits before the softmax; above 1 shows the student
            how the teacher ranks the wrong classes.
        hidden_weight: MSE between the hidden states of mapped layers (and of the embeddings),
            the student's projected to the teacher's width by a learned matrix where they
            differ (TinyBERT, Jiao et al. 2020). Runs the teacher on every step.
        attention_weight: MSE between the attention scores (before the softmax) of mapped
            layers, computed per text; needs the same number of heads in both models.
        minilm_weight: MiniLM's loss (Wang et al. 2020, 2021): KL divergence from the teacher's
            self-attention distributions to the student's, plus from its value relations (the
            softmax of the values' scaled dot products), in the student's last layer and the
            teacher layer the map gives it. Queries, keys and values are split into
            `relation_heads`, so the student may differ from the teacher in width and heads.
        relation_heads: the heads of the MiniLM loss; by default the student's attention heads
            (then, with a teacher of as many heads, the models' own attention distributions).
        layer_map: for each student layer, the teacher layer (0-based) it learns from; by
            default uniform: student layer j of m learns from teacher layer (j + 1) * n / m - 1.
        intermediate_epochs: TinyBERT's two stages: the first N epochs learn only the hidden
            states and attention scores, the rest only the labels and logits; 0 is one stage
            with every loss at once.
    """

    label_weight: float = 1.0
    logit_weight: float = 1.0
    temperature: float = 2.0
    hidden_weight: float = 0.0
    attention_weight: float = 0.0
    minilm_weight: float = 0.0
    relation_heads: int | None = None
    layer_map: list[int] | None = None
    intermediate_epochs: int = 0

    def weights(self) -> dict[str, float]:
        return {name: getattr(self, f"{name}_weight") for name in LOSSES}

    @property
    def logits_only(self) -> bool:
        """Whether the teacher's logits are all the student reads (so they can be cached)."""
        return not any(getattr(self, f"{name}_weight") for name in INTERMEDIATE)


def check_distill(teacher: str | None, distill: DistillSettings | None) -> DistillSettings | None:
    """The settings of a run with a teacher (the defaults where none are given), checked before
    anything loads; None without a teacher."""
    if teacher is None:
        if distill is not None:
            raise UserError("--model.distill is set but --model.teacher is not: name the fine-tuned "
                            "classifier to distil from (an export logs/.../hf_model or its run folder)")
        return None
    distill = distill or DistillSettings()
    weights = distill.weights()
    for name, weight in weights.items():
        check(f"--model.distill.{name}_weight", weight, weight >= 0, "a weight >= 0")
    if not any(weights.values()):
        raise UserError("every --model.distill.*_weight is 0, so the student would learn nothing: "
                        f"give at least one of {', '.join(f'{n}_weight' for n in LOSSES)} a weight above 0")
    check("--model.distill.temperature", distill.temperature, distill.temperature > 0, "a number > 0")
    at_least("--model.distill.intermediate_epochs", distill.intermediate_epochs, 0)
    at_least("--model.distill.relation_heads", distill.relation_heads, 1, optional=True)
    if distill.relation_heads is not None and not distill.minilm_weight:
        raise UserError(f"--model.distill.relation_heads={distill.relation_heads} is read by the MiniLM loss "
                        "only, and minilm_weight is 0: drop it, or set minilm_weight")
    if distill.layer_map is not None and distill.logits_only:
        raise UserError(f"--model.distill.layer_map={distill.layer_map} is read by the hidden, attention and "
                        "MiniLM losses only, and their weights are 0: drop it, or set hidden_weight, "
                        "attention_weight or minilm_weight")
    second_stage = distill.label_weight or distill.logit_weight
    if distill.intermediate_epochs and (distill.logits_only or not second_stage):
        raise UserError("--model.distill.intermediate_epochs needs both stages: a hidden_weight, "
                        "attention_weight or minilm_weight for the first, a label_weight or logit_weight "
                        "for the second")
    return distill


def describe(teacher: str, settings) -> str:
    """One sentence for the model card: the teacher and the losses with their weights; `settings`
    as the resolved config holds them (None for the defaults)."""
    distill = DistillSettings(**{f.name: getattr(settings, f.name, f.default)
                                 for f in fields(DistillSettings)}
                              ) if settings is not None else DistillSettings()
    terms = {"label": "cross-entropy on the labels",
             "logit": f"KL divergence to the teacher's logits at temperature {distill.temperature:g}",
             "hidden": "hidden-state MSE", "attention": "attention-score MSE",
             "minilm": "MiniLM's attention and value-relation KL"
                       + (f" over {distill.relation_heads} relation heads" if distill.relation_heads else "")}
    losses = [f"{terms[name]} (weight {weight:g})" for name, weight in distill.weights().items() if weight]
    layers = (f"; layer map {distill.layer_map}" if distill.layer_map is not None
              else "; layers mapped uniformly" if not distill.logits_only else "")
    stages = (f"; the first {distill.intermediate_epochs} epoch(s) on the intermediate losses alone, "
              "then the labels and logits" if distill.intermediate_epochs else "")
    return f"It was distilled from the teacher `{teacher}` with {', '.join(losses)}{layers}{stages}."
