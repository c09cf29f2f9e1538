"""The distillation losses against hand computations, and the attention scores they read against
the model's own attention probabilities, on a packed batch."""

import math

import pytest
import torch
from torch import nn
from transformers import AutoModelForSequenceClassification

from lightning_modules.distill_capture import per_text, recording, text_spans
from lightning_modules.distill_losses import (
    attention_loss,
    attention_scores,
    hidden_loss,
    label_loss,
    logit_loss,
)
from lightning_modules.heads import classifier_outputs
from lightning_modules.packing import use_varlen_attention
from tests.helpers import PACKING_TEXTS, padded_and_packed


def test_the_logit_loss_is_zero_for_equal_logits_and_the_kl_times_t_squared():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]])
    assert logit_loss(logits, logits.clone(), 2.0).item() == pytest.approx(0.0, abs=1e-7)
    student, teacher, t = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]]), 2.0
    p = [1 / (1 + math.exp(-1.0)), 1 / (1 + math.exp(1.0))]  # teacher / 2: [0, 1]
    q = [1 / (1 + math.exp(-0.5)), 1 / (1 + math.exp(0.5))]  # student / 2: [0.5, 0]
    by_hand = sum(pi * math.log(pi / qi) for pi, qi in zip(p[::-1], q)) * t * t
    assert logit_loss(student, teacher, t).item() == pytest.approx(by_hand, rel=1e-6)
    # T^2 times the KL of the softened logits, for any T
    for t in (1.0, 3.0):
        assert logit_loss(logits, logits.flip(0), t).item() == pytest.approx(
            t * t * logit_loss(logits / t, logits.flip(0) / t, 1.0).item(), rel=1e-6)


def test_the_label_loss_gives_an_unlabelled_text_the_teachers_label():
    logits = torch.tensor([[1.0, 2.0], [0.5, -1.5]])
    teacher = torch.tensor([[0.0, 1.0], [3.0, 0.0]])
    log_p = torch.log_softmax(logits, -1)
    by_hand = -(log_p[0, 1] + log_p[1, 0]).item() / 2  # the second text takes the teacher's 0
    assert label_loss(logits, torch.tensor([1, -100]), teacher).item() == pytest.approx(by_hand, rel=1e-6)
    assert label_loss(logits, torch.tensor([1, 1]), None).item() == pytest.approx(
        -(log_p[0, 1] + log_p[1, 1]).item() / 2, rel=1e-6)


def test_the_hidden_loss_projects_the_student_to_the_teachers_width():
    torch.manual_seed(0)
    student, teacher = [torch.randn(5, 4), torch.randn(7, 4)], [torch.randn(5, 6), torch.randn(7, 6)]
    projection = nn.Linear(4, 6)
    assert projection(student[0]).shape == teacher[0].shape
    weight, bias = projection.weight, projection.bias
    by_hand = sum(((s @ weight.T + bias - t) ** 2).mean() for s, t in zip(student, teacher)).item() / 2
    assert hidden_loss(student, teacher, projection).item() == pytest.approx(by_hand, rel=1e-5)
    assert hidden_loss(teacher, teacher, nn.Identity()).item() == 0.0


def test_the_attention_loss_counts_every_score_once():
    small, large = torch.ones(2, 3, 3), torch.ones(2, 5, 5)
    loss = attention_loss([small, large], [small + 2, large])  # 18 scores off by 2, 50 exact
    assert loss.item() == pytest.approx(18 * 4 / (18 + 50))


def test_scores_from_recorded_queries_and_keys_are_the_models_attention_per_text(tiny_bert):
    """The packed kernels return no attention probabilities: the scores are rebuilt per text from
    the recorded queries and keys, and their softmax is what the model's eager attention gives."""
    eager = AutoModelForSequenceClassification.from_pretrained(tiny_bert, attn_implementation="eager").eval()
    packed_model = AutoModelForSequenceClassification.from_pretrained(tiny_bert).eval()
    assert use_varlen_attention(packed_model)
    _, packed = padded_and_packed(multiple=64)  # with a closing [PAD] segment, which is no text
    spans = text_spans(packed)
    assert len(spans) == len(PACKING_TEXTS)
    with torch.no_grad(), recording(packed_model, [0, 1], hidden=False, attention=True) as seen:
        classifier_outputs(packed_model, packed, False, True, "tiny")
    for row, (_, start, end) in enumerate(spans):
        ids = packed["input_ids"][:, start:end]
        with torch.no_grad():
            truth = eager(input_ids=ids, output_attentions=True).attentions
        for layer in (0, 1):
            queries, keys = per_text(seen.queries[layer], spans)[row], per_text(seen.keys[layer], spans)[row]
            scores = attention_scores(queries, keys, heads=2)
            assert scores.shape == (2, end - start, end - start)
            torch.testing.assert_close(scores.softmax(-1), truth[layer][0], rtol=1e-5, atol=1e-6)
