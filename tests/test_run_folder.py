"""Where a run's files go: a fit that fails before its first step leaves no run folder (so the
documented version_0 paths hold), and a run without a logger writes nothing into the working
directory."""

from pathlib import Path

import pytest

from core.errors import exit_on_user_error
from tests.helpers import IMDB, quick_args, review_rows, write_rows
from train import main


def test_a_fit_that_fails_before_its_first_step_leaves_no_run_folder(tiny_bert, tmp_path):
    bad = write_rows(tmp_path / "bad", [*review_rows(8), {"text": "a film", "label": "maybe"}])
    logs = tmp_path / "logs"
    with pytest.raises(SystemExit, match="maybe"):
        exit_on_user_error(lambda: main([
            "fit", "--config", IMDB, "--model.backbone", tiny_bert, "--data.data_dir", bad,
            "--data.max_length", "64", "--data.cache_dir", str(tmp_path / "cache"),
            "--trainer.logger.init_args.save_dir", str(logs), "--trainer.logger.init_args.name", "run"]))
    assert not list(logs.glob("run/version_*"))
    cli = main(quick_args(tiny_bert, tmp_path, tmp_path / "cache", "--trainer.max_steps", "1",
                          "--trainer.logger.init_args.name", "run", "--test_after_fit", "false"))
    assert Path(cli.trainer.log_dir) == logs / "run" / "version_0"


@pytest.mark.parametrize("switch", [["--trainer.fast_dev_run", "1"], ["--trainer.logger", "false"]])
def test_a_run_without_a_logger_writes_under_logs_and_says_where(switch, tiny_bert, tmp_path, monkeypatch,
                                                                 caplog):
    monkeypatch.chdir(tmp_path)
    caplog.set_level("INFO", logger="train")
    main([*quick_args(tiny_bert, tmp_path, tmp_path / "cache", "--trainer.max_steps", "2",
                      "--test_after_fit", "false"), *switch])
    assert {p.name for p in tmp_path.iterdir()} <= {"cache", "logs", ".cache"}  # .cache: git-ignored
    assert "no logger: checkpoints and the export go to logs/unlogged" in caplog.text
    assert "logging to None" not in caplog.text
    written = {p.name for p in (tmp_path / "logs" / "unlogged").iterdir()}
    assert written <= {"checkpoints", "hf_model", "config.yaml", "predictions.csv"} and written
