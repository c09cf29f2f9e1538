"""Scale-out and accumulation compute the update of one big batch: 2 DDP processes (gloo, CPU)
of batch 8 and 2 accumulated micro-batches of 8 both give the gradient of one batch of 16; and
2 processes predict and test every text exactly once, as one process does."""

import csv
import sys

import pytest
import torch
from lightning import Callback

from tests.helpers import CONFIGS, QUICKSTART, one_thread, quick_args
from train import main


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Every run of this module on one thread, the forked ones and those they are compared with."""
    with one_thread():
        yield


class GradCapture(Callback):
    """Saves the gradient the first optimizer step applies (after DDP's all-reduce)."""

    def __init__(self, path: str):
        self.path = path

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.global_step == 0 and trainer.is_global_zero:
            grads = {n: p.grad.detach().clone() for n, p in pl_module.named_parameters()
                     if p.grad is not None}
            torch.save(grads, self.path)


def first_gradient(tmp_path, backbone: str, name: str, *extra: str) -> dict:
    """The gradient of the first optimizer step of a quickstart fit."""
    out = tmp_path / f"{name}.pt"
    args = quick_args(
        backbone, tmp_path, tmp_path / "cache", "--trainer.max_steps", "1",
        "--trainer.limit_val_batches", "0", "--test_after_fit", "false",
        "--trainer.logger.init_args.name", name,
        "--trainer.callbacks+=tests.test_scale.GradCapture", "--trainer.callbacks.path", str(out), *extra,
        num_train=200, num_test=20)
    main(args)
    return torch.load(out, weights_only=True)


def assert_same_gradient(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and a
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-7, msg=name)


@pytest.fixture(scope="module")
def one_batch_of_16(no_dropout_bert, tmp_path_factory):
    return first_gradient(tmp_path_factory.mktemp("single"), no_dropout_bert, "single",
                          "--data.batch_size", "16")


def test_accumulated_micro_batches_equal_one_big_batch(one_batch_of_16, no_dropout_bert, tmp_path):
    accumulated = first_gradient(tmp_path, no_dropout_bert, "accumulated", "--data.batch_size", "8",
                                 "--trainer.accumulate_grad_batches", "2")
    assert_same_gradient(accumulated, one_batch_of_16)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="DDP on CPU is tested on Linux (gloo)")
def test_the_ddp_overlay_on_two_cpu_processes_equals_one_process_with_double_batch(
        one_batch_of_16, no_dropout_bert, tmp_path):
    """configs/overlays/ddp.yaml itself (its DDPStrategy options), not its CPU fallback: the
    accelerator is set to cpu, so the two processes run DDP over gloo (forked from this one)."""
    ddp = first_gradient(tmp_path, no_dropout_bert, "ddp", "--data.batch_size", "8",
                         "--config", str(CONFIGS / "overlays" / "ddp.yaml"), "--trainer.accelerator", "cpu",
                         "--trainer.devices", "2", "--trainer.strategy.init_args.start_method", "fork")
    assert_same_gradient(ddp, one_batch_of_16)


class MetricsCapture(Callback):
    """Saves the metrics `test` computed (synced over every process) on rank 0."""

    def __init__(self, path: str):
        self.path = path

    def on_test_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            torch.save({k: float(v) for k, v in trainer.callback_metrics.items()}, self.path)


def evaluate_args(subcommand: str, backbone: str, tmp_path, name: str, *extra: str) -> list[str]:
    """`test` or `predict` of an untrained quickstart model (seeded: the same weights in every
    process) on 7 texts, an odd count that two processes cannot share evenly."""
    return [subcommand, "--config", QUICKSTART, "--model.backbone", backbone,
            "--data.num_train", "64", "--data.num_test", "7", "--data.eval_batch_size", "2",
            "--data.cache_dir", str(tmp_path / "cache"),
            "--trainer.logger.init_args.save_dir", str(tmp_path / "logs"),
            "--trainer.logger.init_args.name", name, *extra]


# forked from this process (DDPStrategy's start_method="fork"): two ranks over gloo, without
# importing torch and Lightning twice more
TWO_FORKED_PROCESSES = ["--trainer.strategy", "ddp_fork", "--trainer.devices", "2",
                        "--trainer.accelerator", "cpu"]


def run_on_two_processes(args: list[str]) -> None:
    main([*args, *TWO_FORKED_PROCESSES])


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="DDP on CPU is tested on Linux (gloo)")
def test_two_processes_predict_every_text_once_beside_its_own_text(tiny_bert, tmp_path):
    texts = [f"review {i}: the film was {'good' if i % 3 else 'bad'} {'and long ' * i}" for i in range(7)]
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(texts) + "\n")

    def predictions(name: str) -> list[dict]:
        with open(tmp_path / "logs" / name / "version_0" / "predictions.csv") as f:
            return list(csv.DictReader(f))

    main(evaluate_args("predict", tiny_bert, tmp_path, "one", "--data.predict_file", str(source)))
    run_on_two_processes(evaluate_args("predict", tiny_bert, tmp_path, "two",
                                       "--data.predict_file", str(source)))
    one, two = predictions("one"), predictions("two")
    assert [row["text"] for row in two] == texts  # every text once, in input order
    for a, b in zip(one, two, strict=True):  # each text beside its own prediction
        assert a["label"] == b["label"]
        assert float(a["prob_pos"]) == pytest.approx(float(b["prob_pos"]), abs=2e-6)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="DDP on CPU is tested on Linux (gloo)")
def test_two_processes_test_every_text_once(tiny_bert, tmp_path):
    """Lightning's default evaluation sampler repeats a text to even out the shards: with 7 texts
    on 2 processes one would count twice in test/acc and test/loss."""
    results = {}
    for name in ("one", "two"):
        out = tmp_path / f"{name}.pt"
        capture = ["--trainer.callbacks+=tests.test_scale.MetricsCapture",
                   "--trainer.callbacks.path", str(out)]
        args = evaluate_args("test", tiny_bert, tmp_path, name, *capture)
        main(args) if name == "one" else run_on_two_processes(args)
        results[name] = torch.load(out, weights_only=True)
    assert {"test/acc", "test/f1", "test/loss"} <= set(results["one"])
    for metric in ("test/acc", "test/f1", "test/loss"):
        assert results["two"][metric] == pytest.approx(results["one"][metric], rel=1e-5), metric
