"""A student cut from its teacher is the teacher's chosen layers before it trains; the layer map;
TinyBERT's two stages; the teacher stays out of the student's checkpoints and parameters."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from lightning_modules.adapters import encoder_layers
from lightning_modules.classification import SequenceClassifier
from lightning_modules.distill_settings import DistillSettings
from lightning_modules.distill_student import uniform_map
from tests.distill_helpers import LABELS, trained_teacher
from tests.helpers import padded_and_packed


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> str:
    """Four layers of TinyBERT's head shape; fine-tuned only in its first two (the rest are random),
    which is all a copy needs."""
    return trained_teacher(tmp_path_factory.mktemp("distill") / "teacher", layers=4, steps=4)


def test_a_student_cut_from_the_teacher_is_its_chosen_layers(teacher):
    original = AutoModelForSequenceClassification.from_pretrained(teacher).state_dict()
    student = SequenceClassifier(teacher, LABELS, keep_layers=[1, 3], teacher=teacher)
    assert student.model.config.num_hidden_layers == 2 and len(encoder_layers(student.model)) == 2
    cut = student.model.state_dict()
    renamed = {".layer.0.": ".layer.1.", ".layer.1.": ".layer.3."}
    for name, weight in cut.items():
        source = next((name.replace(a, b) for a, b in renamed.items() if a in name), name)
        assert torch.equal(weight, original[source]), name
    assert {n.split(".layer.")[1].split(".")[0] for n in cut if ".layer." in n} == {"0", "1"}
    whole = SequenceClassifier(teacher, LABELS, keep_layers=[0, 1, 2, 3]).eval()
    _, packed = padded_and_packed()
    torch.testing.assert_close(whole(packed), student.distiller.teacher.logits(packed, torch.zeros(())),
                               rtol=0, atol=0)


def test_the_teacher_never_trains_and_follows_the_students_dtype(teacher, tiny_distilbert):
    """Its weights take no gradient from a step, it stays in eval mode (no dropout: the same
    logits every time) when Lightning puts the student in train mode, and a student in float64
    runs it in float64; only the student and the projection are trained and saved."""
    student = SequenceClassifier(tiny_distilbert, LABELS, teacher=teacher,
                                 distill=DistillSettings(hidden_weight=1.0))
    model_weights = {f"model.{n}" for n, _ in student.model.named_parameters()}
    assert set(student.trainable_state_keys()) == model_weights | {
        "distiller.projection.weight", "distiller.projection.bias"}  # 64 wide to the teacher's 52
    student.train().double()
    student.log = student.log_dict = lambda *args, **kwargs: None  # no Trainer to log to
    _, packed = padded_and_packed()
    student.training_step(dict(packed), 0).backward()
    distiller = student.distiller
    assert all(p.grad is None for p in distiller.teacher.model.parameters())
    assert distiller.projection.weight.grad is not None
    assert not distiller.teacher.model.training
    first = distiller.teacher.logits(packed, next(student.parameters()))
    assert first.dtype == torch.float64
    torch.testing.assert_close(distiller.teacher.logits(packed, next(student.parameters())), first,
                               rtol=0, atol=0)


def test_the_intermediate_losses_are_the_same_on_packed_and_padded_batches(teacher, tiny_distilbert):
    """Packing puts several texts in a row; the losses read each text's own tokens either way."""
    settings = DistillSettings(hidden_weight=1.0, attention_weight=1.0, minilm_weight=1.0)
    student = SequenceClassifier(tiny_distilbert, LABELS, teacher=teacher, distill=settings).eval()
    padded, packed = padded_and_packed()
    terms = []
    for batch in (padded, packed):
        logged = {}
        student.log = lambda *args, **kwargs: None
        student.log_dict = lambda values, **kwargs: logged.update({k: v.item() for k, v in values.items()})
        with torch.no_grad():
            student.training_step(dict(batch), 0)
        terms.append(logged)
    assert set(terms[0]) == {f"distill/{n}" for n in ("label", "logit", "hidden", "attention", "minilm")}
    for name, value in terms[0].items():
        assert terms[1][name] == pytest.approx(value, rel=1e-5), name


def test_the_layer_map_is_uniform_by_default_and_ends_on_the_last_layer():
    assert uniform_map(3, 6) == [1, 3, 5]
    assert uniform_map(2, 6) == [2, 5]
    assert uniform_map(6, 12) == [1, 3, 5, 7, 9, 11]
    assert uniform_map(4, 4) == [0, 1, 2, 3]


def test_two_stages_learn_the_intermediate_losses_first_then_the_logits(teacher, tiny_bert):
    settings = DistillSettings(label_weight=1.0, logit_weight=0.5, hidden_weight=2.0, attention_weight=3.0,
                               minilm_weight=4.0, intermediate_epochs=2)
    distiller = SequenceClassifier(tiny_bert, LABELS, teacher=teacher, distill=settings).distiller
    first = {"label": 0.0, "logit": 0.0, "hidden": 2.0, "attention": 3.0, "minilm": 4.0}
    assert distiller.weights_at(0) == distiller.weights_at(1) == first
    assert distiller.weights_at(2) == {"label": 1.0, "logit": 0.5, "hidden": 0.0, "attention": 0.0,
                                       "minilm": 0.0}
    assert distiller.teacher_layers == [1, 3]  # tiny_bert's 2 layers of the teacher's 4


def test_a_student_cut_from_the_teacher_learns_each_layer_from_its_original(teacher, tiny_distilbert):
    """keep_layers [0, 2] of 4: its layers learn from teacher layers 0 and 2 (the uniform map would
    say 1 and 3); a student of another backbone keeps the uniform map; a given map wins."""
    settings = DistillSettings(hidden_weight=1.0)
    cut = SequenceClassifier(teacher, LABELS, keep_layers=[0, 2], teacher=teacher, distill=settings)
    assert cut.distiller.teacher_layers == [0, 2]
    other = SequenceClassifier(tiny_distilbert, LABELS, teacher=teacher, distill=settings)
    assert other.distiller.teacher_layers == [1, 3]
    chosen = SequenceClassifier(teacher, LABELS, keep_layers=[0, 2], teacher=teacher,
                                distill=DistillSettings(hidden_weight=1.0, layer_map=[1, 3]))
    assert chosen.distiller.teacher_layers == [1, 3]
