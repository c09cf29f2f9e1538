"""The distillation losses against hand computations (MiniLM's for models of other widths), and the
attention scores they read against the model's own attention probabilities, on a packed batch."""

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
    minilm_loss,
)
from lightning_modules.heads import classifier_outputs
from lightning_modules.packing import use_varlen_attention
from tests.helpers import PACKING_TEXTS, padded_and_packed


def kl(p: list[float], q: list[float]) -> float:
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


def softmax(xs: list[float]) -> list[float]:
    exps = [math.exp(x) for x in xs]
    return [e / sum(exps) for e in exps]


def test_the_logit_loss_is_the_kl_of_the_softened_logits_times_t_squared():
    """By hand, for two texts and three temperatures: T^2 keeps the gradients' size as T grows."""
    student = torch.tensor([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]])
    teacher = torch.tensor([[0.0, 2.0, 1.0], [1.5, -1.0, 0.5]])
    for t in (1.0, 2.0, 4.0):
        per_text = [kl(softmax([x / t for x in b]), softmax([x / t for x in a]))
                    for a, b in zip(student.tolist(), teacher.tolist())]
        assert logit_loss(student, teacher, t).item() == pytest.approx(t * t * sum(per_text) / 2, rel=1e-6)


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
    with torch.no_grad(), recording(packed_model, hidden=[], attention=[0, 1], values=[]) as seen:
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


def relation_rows(a: torch.Tensor, b: torch.Tensor, heads: int) -> list[list[float]]:
    """Softmax rows of a's tokens against b's, head by head, scaled by 1/sqrt(head size), by hand."""
    size = a.shape[1] // heads
    return [softmax([sum(a[i, h * size + f].item() * b[j, h * size + f].item() for f in range(size))
                     / math.sqrt(size) for j in range(len(b))])
            for h in range(heads) for i in range(len(a))]


def test_the_minilm_loss_is_the_kl_of_attention_and_value_relations_for_models_of_other_widths():
    """A student 4 wide and a teacher 6 wide, two relation heads (of 2 and of 3), two texts of 3
    and 2 tokens: every head's token row counts once."""
    torch.manual_seed(0)
    student = tuple([torch.randn(3, 4), torch.randn(2, 4)] for _ in range(3))  # queries, keys, values
    teacher = tuple([torch.randn(3, 6), torch.randn(2, 6)] for _ in range(3))
    total = 0.0
    for text in range(2):
        for pair in ((0, 1), (2, 2)):  # queries against keys, values against values
            ours = relation_rows(student[pair[0]][text], student[pair[1]][text], heads=2)
            theirs = relation_rows(teacher[pair[0]][text], teacher[pair[1]][text], heads=2)
            total += sum(kl(t, s) for s, t in zip(ours, theirs))
    by_hand = total / (2 * (3 + 2))  # each of the two KLs averaged over its 10 rows
    assert minilm_loss(student, teacher, heads=2).item() == pytest.approx(by_hand, rel=1e-5)


def test_a_teacher_twice_as_wide_with_the_students_relations_teaches_a_minilm_loss_of_zero():
    """Each teacher head holds the student's head twice, scaled so that its scaled dot products
    (over twice the features, divided by the square root of twice the size) are the student's."""
    torch.manual_seed(1)
    student = tuple([torch.randn(5, 8)] for _ in range(3))
    heads, size = 4, 2

    def doubled(x: torch.Tensor) -> torch.Tensor:
        parts = x.unflatten(-1, (heads, size))
        return torch.cat([parts, parts], -1).flatten(-2) * 2 ** -0.25

    teacher = tuple([doubled(x[0])] for x in student)
    assert minilm_loss(student, teacher, heads).item() == pytest.approx(0.0, abs=1e-6)
    assert minilm_loss(student, tuple([x[0] * 2] for x in teacher), heads).item() > 0.01
