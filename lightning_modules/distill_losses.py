"""The losses of a distillation, as plain functions of tensors, each computed in fp32."""

import torch
import torch.nn.functional as F
from torch import nn

from core.batches import UNLABELLED


def label_loss(logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor | None
               ) -> torch.Tensor:
    """Cross-entropy on the labels; an unlabelled text takes the teacher's most likely label."""
    if teacher_logits is not None:
        labels = torch.where(labels == UNLABELLED, teacher_logits.argmax(-1), labels)
    return F.cross_entropy(logits.float(), labels)


def logit_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) of the logits divided by T, times T^2, averaged over the texts."""
    t = temperature
    student, teacher = (F.log_softmax(x.float() / t, dim=-1) for x in (logits, teacher_logits))
    return F.kl_div(student, teacher, log_target=True, reduction="batchmean") * t * t


def hidden_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], projection: nn.Module
                ) -> torch.Tensor:
    """MSE between paired hidden states ([tokens, width] each), the student's projected to the
    teacher's width; the mean over the pairs."""
    pairs = zip(student, teacher, strict=True)
    return torch.stack([F.mse_loss(projection(s).float(), t.float()) for s, t in pairs]).mean()


def attention_scores(query: torch.Tensor, key: torch.Tensor, heads: int) -> torch.Tensor:
    """One text's attention scores before the softmax, [heads, tokens, tokens], from its queries
    and keys ([tokens, width] each), scaled by 1/sqrt(head size) as the model scales them."""
    q, k = (x.float().unflatten(-1, (heads, -1)).transpose(0, 1) for x in (query, key))
    return q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5


def attention_loss(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
    """MSE between paired score tensors of any shapes (texts differ in length), every score
    counting once."""
    squares = sum(F.mse_loss(s, t, reduction="sum") for s, t in zip(student, teacher, strict=True))
    return squares / sum(s.numel() for s in student)


def relation_kl(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
    """KL(teacher || student) of paired score tensors [heads, tokens, tokens] taken through a
    softmax over their last dimension, averaged over every head's token rows of every text."""
    total = sum(F.kl_div(s.log_softmax(-1), t.log_softmax(-1), log_target=True, reduction="sum")
                for s, t in zip(student, teacher, strict=True))
    return total / sum(s.shape[0] * s.shape[1] for s in student)


def minilm_loss(student: tuple[list, list, list], teacher: tuple[list, list, list], heads: int
                ) -> torch.Tensor:
    """MiniLM's (Wang et al. 2020): the KL of the attention distributions (queries against keys)
    plus the KL of the value relations (values against values), from each text's queries, keys and
    values ([tokens, width] each, per model) split into `heads` relation heads of each model's
    width / heads: neither the widths nor the models' own head counts need to match."""
    (sq, sk, sv), (tq, tk, tv) = student, teacher
    attention = relation_kl([attention_scores(q, k, heads) for q, k in zip(sq, sk, strict=True)],
                            [attention_scores(q, k, heads) for q, k in zip(tq, tk, strict=True)])
    values = relation_kl([attention_scores(v, v, heads) for v in sv],
                         [attention_scores(v, v, heads) for v in tv])
    return attention + values
