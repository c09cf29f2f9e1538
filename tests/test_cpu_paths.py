"""How PyTorch runs an export on the CPU (deploy/cpu_paths.py): the probe takes another path than MKL
only where it is faster by more than MARGIN and predicts as fp32 does, times bf16 only where the CPU
computes it natively, leaves out a path that fails, and says in one line what it took; the runtime
gives the plain model's logits on each path, and a path it is told skips the probe. The timings are
fakes: each path takes the time a test gives it."""

import copy
import logging

import numpy as np
import pytest
import torch
from torch import nn
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from deploy import cpu_paths
from deploy.cpu_paths import PATHS, PLAIN, fastest
from deploy.onednn import OneDNNLinear
from deploy.runtimes import TorchRuntime
from deploy.streaming import Predictor
from tests.deploy_helpers import one_torch_thread, texts  # noqa: F401 (autouse)

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch has no oneDNN")

ONEDNN, BF16 = "fp32 (oneDNN linear layers)", "bf16"
IDS = [[(3 * i + j) % 11 + 1 for j in range(8)] for i in range(12)]  # 12 texts of 8 tokens


def path_of(model: nn.Module) -> str:
    """Which path made `model`: bf16 weights, oneDNN's linear layers, or the plain fp32 model."""
    if next(model.parameters()).dtype == torch.bfloat16:
        return BF16
    return ONEDNN if any(isinstance(m, OneDNNLinear) for m in model.modules()) else PLAIN


class Probe:
    """A tiny classifier and the `logits(model, batch)` the probe calls, which remembers the model it
    ran last, so that the fake `seconds` knows which path it times."""

    def __init__(self):
        torch.manual_seed(0)
        self.model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 2)).eval()
        self.last = None

    def logits(self, model: nn.Module, batch: list[list[int]]) -> np.ndarray:
        self.last = model
        x = torch.tensor(batch, dtype=torch.float32) / 6
        with torch.inference_mode():
            return model(x.to(next(model.parameters()).dtype)).float().numpy()


@pytest.fixture
def timed(monkeypatch):
    """Fake timings: `timed(times, bf16=...)` makes each path take `times[path]` seconds and
    `bf16_pays()` answer `bf16`; returns the names of the paths timed, in order."""

    def install(times: dict[str, float], bf16: bool = False) -> list[str]:
        timed_paths = []

        def seconds(run, repeats: int = 2) -> float:
            probe.last = None
            run()
            timed_paths.append(path_of(probe.last))
            return times[timed_paths[-1]]

        monkeypatch.setattr(cpu_paths, "seconds", seconds)
        monkeypatch.setattr(cpu_paths, "bf16_pays", lambda: bf16)
        return timed_paths

    probe = Probe()
    install.probe = probe
    return install


def messages(caplog) -> list[str]:
    """The INFO lines of deploy/cpu_paths.py."""
    return [r.getMessage() for r in caplog.records
            if r.name == "deploy.cpu_paths" and r.levelno == logging.INFO]


def chosen_line(caplog, name: str) -> None:
    """The last line of the probe names `name` as the path taken, and it is the only such line."""
    found = [m for m in messages(caplog) if m.startswith("PyTorch runs ")]
    assert len(found) == 1 and found[0].startswith(f"PyTorch runs {name} on this CPU:"), found


def test_onednn_is_taken_where_it_is_faster_than_mkl_by_more_than_the_margin(timed, caplog):
    caplog.set_level(logging.INFO, logger="deploy.cpu_paths")
    timed_paths = timed({PLAIN: 1.0, ONEDNN: 0.6})
    probe = timed.probe
    name, model = fastest(probe.model, probe.logits, IDS)
    assert (name, path_of(model)) == (ONEDNN, ONEDNN)
    assert timed_paths == [PLAIN, ONEDNN]
    assert path_of(probe.model) == PLAIN  # the plain model itself is left as it was
    assert len(messages(caplog)) == 1
    chosen_line(caplog, ONEDNN)


@pytest.mark.parametrize("onednn", [0.97, 1.2])
def test_mkl_stays_where_onednn_is_faster_by_less_than_the_margin_or_slower(timed, caplog, onednn):
    caplog.set_level(logging.INFO, logger="deploy.cpu_paths")
    assert 1 - cpu_paths.MARGIN < 0.97
    timed({PLAIN: 1.0, ONEDNN: onednn})
    probe = timed.probe
    name, model = fastest(probe.model, probe.logits, IDS)
    assert name == PLAIN and model is probe.model
    assert len(messages(caplog)) == 1
    chosen_line(caplog, PLAIN)


def test_bf16_is_neither_made_nor_timed_where_the_cpu_has_no_native_bf16(timed, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="deploy.cpu_paths")
    made, maker = [], PATHS[BF16]
    monkeypatch.setitem(PATHS, BF16, lambda model: made.append(model) or maker(model))
    timed_paths = timed({PLAIN: 1.0, ONEDNN: 1.0, BF16: 0.1}, bf16=False)
    probe = timed.probe
    assert fastest(probe.model, probe.logits, IDS)[0] == PLAIN
    assert made == [] and timed_paths == [PLAIN, ONEDNN]
    assert len(messages(caplog)) == 1


def test_bf16_is_taken_where_it_is_fastest_and_predicts_as_fp32_does(timed, caplog):
    caplog.set_level(logging.INFO, logger="deploy.cpu_paths")
    timed_paths = timed({PLAIN: 1.0, ONEDNN: 0.6, BF16: 0.3}, bf16=True)
    probe = timed.probe
    name, model = fastest(probe.model, probe.logits, IDS)
    assert (name, path_of(model)) == (BF16, BF16)
    assert timed_paths == [PLAIN, ONEDNN, BF16]
    assert path_of(probe.model) == PLAIN
    chosen_line(caplog, BF16)


class Flipped(nn.Module):
    """A model whose logits are the negated logits of `model`: every label changes."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return -self.model(x)


@pytest.mark.parametrize("differs", ["beyond the tolerance", "in its labels"])
def test_bf16_is_left_out_with_a_line_where_its_predictions_differ_from_fp32s(timed, monkeypatch,
                                                                               caplog, differs):
    caplog.set_level(logging.INFO, logger="deploy.cpu_paths")
    if differs == "beyond the tolerance":
        monkeypatch.setattr(cpu_paths, "BF16_TOLERANCE", 0.0)
    else:
        monkeypatch.setitem(PATHS, BF16, lambda model: Flipped(copy.deepcopy(model)).to(torch.bfloat16))
    timed_paths = timed({PLAIN: 1.0, ONEDNN: 1.0, BF16: 0.1}, bf16=True)
    probe = timed.probe
    assert fastest(probe.model, probe.logits, IDS)[0] == PLAIN
    assert BF16 not in timed_paths
    assert any(m.startswith(f"PyTorch: {BF16} left out: its predictions differ") for m in messages(caplog))
    chosen_line(caplog, PLAIN)


def test_a_path_that_fails_is_left_out_with_a_line_and_mkl_runs(timed, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="deploy.cpu_paths")

    def fails(model):
        raise RuntimeError("no oneDNN kernel for this op\nsecond line")

    monkeypatch.setitem(PATHS, ONEDNN, fails)
    timed_paths = timed({PLAIN: 1.0, ONEDNN: 0.1})
    probe = timed.probe
    name, model = fastest(probe.model, probe.logits, IDS)
    assert name == PLAIN and model is probe.model
    assert timed_paths == [PLAIN]
    assert f"PyTorch: {ONEDNN} left out: no oneDNN kernel for this op" in messages(caplog)
    chosen_line(caplog, PLAIN)


def reference_logits(folder, items: list[str]) -> np.ndarray:
    """Each text's logits by the plain PyTorch model, one text at a time (no batching)."""
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.inference_mode():
        return np.stack([model(**tokenizer(text, truncation=True, max_length=32, return_tensors="pt"))
                         .logits[0].numpy() for text in items])


def predicted(runtime: TorchRuntime, folder, items: list[str]) -> np.ndarray:
    return Predictor(runtime, AutoTokenizer.from_pretrained(folder), 32, batch_size=4).logits(items)


@pytest.mark.parametrize("path", [PLAIN, ONEDNN])
def test_a_path_the_runtime_is_told_gives_the_plain_models_logits_without_a_probe(export, monkeypatch,
                                                                                   path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def probe(*args):
        raise AssertionError("the runtime probed the CPU's paths though it was told one")

    monkeypatch.setattr(cpu_paths, "fastest", probe)
    items = texts(12)
    runtime = TorchRuntime(export, 0, 32, path=path)
    found = predicted(runtime, export, items)
    assert runtime.path == path and path_of(runtime.model) == path
    np.testing.assert_allclose(found, reference_logits(export, items), rtol=0, atol=1e-5)


def test_the_runtime_runs_the_path_the_probe_finds_fastest_on_the_first_texts(export, timed, monkeypatch,
                                                                              caplog):
    caplog.set_level(logging.INFO, logger="deploy.cpu_paths")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    runtime = TorchRuntime(export, 0, 32)
    original = runtime.run

    def run(model, batch):  # tells the fake timings which path's model ran last
        timed.probe.last = model
        return original(model, batch)

    monkeypatch.setattr(runtime, "run", run)
    timed_paths = timed({PLAIN: 1.0, ONEDNN: 0.5})
    items = texts(12)
    assert runtime.path is None
    found = predicted(runtime, export, items)
    assert runtime.path == ONEDNN and path_of(runtime.model) == ONEDNN
    assert timed_paths == [PLAIN, ONEDNN]
    np.testing.assert_allclose(found, reference_logits(export, items), rtol=0, atol=1e-5)
    chosen_line(caplog, ONEDNN)
