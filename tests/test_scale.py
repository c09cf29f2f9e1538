"""Scale-out and accumulation compute the update of one big batch: 2 DDP processes (gloo, CPU)
of batch 8 and 2 accumulated micro-batches of 8 both give the gradient of one batch of 16."""

import sys

import pytest
import torch
from lightning import Callback

from tests.helpers import quick_args, run_cli
from train import main


class GradCapture(Callback):
    """Saves the gradient the first optimizer step applies (after DDP's all-reduce)."""

    def __init__(self, path: str):
        self.path = path

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.global_step == 0 and trainer.is_global_zero:
            grads = {n: p.grad.detach().clone() for n, p in pl_module.named_parameters()
                     if p.grad is not None}
            torch.save(grads, self.path)


def first_gradient(tmp_path, backbone: str, name: str, *extra: str, in_process: bool = True) -> dict:
    """The gradient of the first optimizer step of a quickstart fit; DDP needs real processes."""
    out = tmp_path / f"{name}.pt"
    args = quick_args(
        backbone, tmp_path, tmp_path / "cache", "--trainer.max_steps", "1",
        "--trainer.limit_val_batches", "0", "--test_after_fit", "false",
        "--trainer.logger.init_args.name", name,
        "--trainer.callbacks+=tests.test_scale.GradCapture", "--trainer.callbacks.path", str(out), *extra,
        num_train=200, num_test=20)
    if in_process:
        main(args)
    else:
        result = run_cli(*args, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
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
def test_ddp_on_two_cpu_processes_equals_one_process_with_double_batch(one_batch_of_16, no_dropout_bert,
                                                                       tmp_path):
    ddp = first_gradient(tmp_path, no_dropout_bert, "ddp", "--data.batch_size", "8",
                         "--trainer.strategy", "ddp", "--trainer.devices", "2", in_process=False)
    assert_same_gradient(ddp, one_batch_of_16)
