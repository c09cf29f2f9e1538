"""Crash and resume: a run killed with SIGKILL mid-epoch, resumed from last.ckpt, ends with the
same weights and step count as a run never interrupted; checkpoints are written atomically."""

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from lightning import Callback

from plugins.checkpoint_io import AtomicCheckpointIO
from tests.helpers import forked_train_py, one_thread, quick_args
from train import main

STEPS_PER_EPOCH = 18  # 160 generated reviews, 10% held out, batch 8


class Pause(Callback):
    """Slows each step a little, so the test can kill the run in the middle of an epoch."""

    def __init__(self, seconds: float = 0.1):
        self.seconds = seconds

    def on_train_batch_end(self, *args) -> None:
        time.sleep(self.seconds)


CALLBACKS = """
trainer:
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args: {monitor: val/acc, mode: max, save_last: true, enable_version_counter: false}
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args: {every_n_train_steps: 4, save_top_k: 0, save_last: true, enable_version_counter: false}
    - class_path: plugins.preemption.CheckpointOnSigterm
    - class_path: plugins.rng_state.RNGState
"""


class StepFile(Callback):
    """Writes the global step after every batch, so a test knows how far a run has come."""

    def __init__(self, path: str):
        self.path = path

    def on_train_batch_end(self, trainer, *args) -> None:
        Path(self.path).write_text(str(trainer.global_step))


def fit_args(workdir: Path, backbone: str, name: str, *extra: str) -> list[str]:
    (workdir / "callbacks.yaml").write_text(CALLBACKS)
    return quick_args(
        backbone, workdir, workdir / "cache", "--config", str(workdir / "callbacks.yaml"),
        "--model.learning_rate", "1e-3", "--data.batch_size", "8", "--test_after_fit", "false",
        "--trainer.max_epochs", "2", "--trainer.val_check_interval", "1.0",
        "--trainer.logger.init_args.name", name, *extra, num_train=160, num_test=32)


def killable(workdir: Path, backbone: str, name: str, *extra: str) -> multiprocessing.Process:
    """The run to be killed, in a process of its own, slowed so it is killed mid-epoch."""
    args = fit_args(workdir, backbone, name, "--trainer.callbacks+=tests.test_resume.Pause", *extra)
    return forked_train_py(args, workdir / "stderr.txt")


def resumed_from(last: Path, workdir: Path, backbone: str, name: str) -> dict:
    """The last checkpoint after resuming from `last` (in this process: nothing of the killed
    one survives here but its files)."""
    main(fit_args(workdir, backbone, name, "--ckpt_path", str(last)))
    return torch.load(last, weights_only=True)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Every run of this module on one thread, the forked ones and those they are compared with."""
    with one_thread():
        yield


@pytest.fixture(scope="module")
def straight(tiny_bert, tmp_path_factory) -> dict:
    """The last checkpoint of a run never interrupted, which both resumed runs must match."""
    workdir = tmp_path_factory.mktemp("straight")
    main(fit_args(workdir, tiny_bert, "straight"))
    return torch.load(workdir / "logs/straight/version_0/checkpoints/last.ckpt", weights_only=True)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(straight, tiny_bert, tmp_path):

    crashed = killable(tmp_path, tiny_bert, "crashed")
    last = tmp_path / "logs" / "crashed" / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and crashed.is_alive():
        if last.exists() and torch.load(last, weights_only=True)["global_step"] >= 8:
            break
        time.sleep(0.05)
    os.kill(crashed.pid, signal.SIGKILL)
    crashed.join()
    killed_at = torch.load(last, weights_only=True)
    assert killed_at["epoch"] == 0 and 0 < killed_at["global_step"] < STEPS_PER_EPOCH

    resumed = resumed_from(last, tmp_path, tiny_bert, "crashed")
    assert resumed["global_step"] == straight["global_step"] == 2 * STEPS_PER_EPOCH
    assert resumed["state_dict"].keys() == straight["state_dict"].keys()
    for key, value in straight["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][key], value, rtol=0, atol=1e-6, msg=key)
    assert not list((tmp_path / "logs" / "crashed").glob("version_1"))  # resumed in its own folder
    assert not list(last.parent.glob("last-v*.ckpt"))


def test_interrupted_checkpoint_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    target = tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 1}, target)

    def torn_write(checkpoint, path):
        Path(path).write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr("lightning.fabric.plugins.io.torch_io._atomic_save", torn_write)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"global_step": 2}, target)
    assert torch.load(target, weights_only=True) == {"global_step": 1}


def test_ckpt_path_last_resumes_the_newest_run_in_its_folder(tiny_bert, tmp_path):
    def fit(epochs: int, *extra: str):
        return main(quick_args(tiny_bert, tmp_path, tmp_path / "cache", "--test_after_fit", "false",
                               "--trainer.max_epochs", str(epochs), "--trainer.val_check_interval", "1.0",
                               *extra))

    older, newest = fit(1), fit(1)
    resumed = fit(2, "--ckpt_path", "last")
    assert resumed.trainer.log_dir == newest.trainer.log_dir != older.trainer.log_dir
    assert resumed.trainer.global_step == 2 * newest.trainer.global_step


@pytest.mark.slow
def test_sigterm_saves_the_exact_state_and_resumes_to_an_uninterrupted_run(straight, tiny_bert, tmp_path):

    steps = tmp_path / "step"
    stopped = killable(tmp_path, tiny_bert, "stopped", "--trainer.callbacks+=tests.test_resume.StepFile",
                       "--trainer.callbacks.path", str(steps))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (steps.exists() and int(steps.read_text() or 0) >= 6):
        time.sleep(0.05)
    seen = int(steps.read_text())
    os.kill(stopped.pid, signal.SIGTERM)
    stopped.join(timeout=120)
    stderr = (tmp_path / "stderr.txt").read_text()
    assert stopped.exitcode == 143, stderr[-3000:]
    assert "stopped by SIGTERM" in stderr.strip().splitlines()[-1]
    assert "Traceback" not in stderr
    last = tmp_path / "logs" / "stopped" / "version_0" / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=True)
    assert saved["epoch"] == 0 and seen <= saved["global_step"] < STEPS_PER_EPOCH

    resumed = resumed_from(last, tmp_path, tiny_bert, "stopped")
    assert resumed["global_step"] == straight["global_step"] == 2 * STEPS_PER_EPOCH
    for key, value in straight["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][key], value, rtol=0, atol=1e-6, msg=key)
