"""Every bad input of the catalogue (tests/bad_inputs.py, tests/bad_data.py) stops the real CLI,
in-process, with one `error:` line naming the bad file, row or option, before any checkpoint is
written; and the exit path itself: status 1, the line last on stderr, no traceback."""

import pytest

from core.errors import exit_on_user_error
from tests.bad_inputs import Case, all_cases, build
from tests.helpers import IMDB, QUICKSTART, forked_train_py, write_rows
from train import main


@pytest.mark.parametrize("kind, name", all_cases(), ids=lambda x: x)
def test_bad_input_is_one_line_naming_it(kind, name, tmp_path, tiny_bert, capsys, monkeypatch):
    args, expected = build(kind, name, Case(tmp_path, tiny_bert, monkeypatch))
    logs = tmp_path / "logs"
    with pytest.raises(SystemExit) as stop:
        exit_on_user_error(lambda: main([*args, "--data.cache_dir", str(tmp_path / "cache"),
                                         "--trainer.logger.init_args.save_dir", str(logs)]))
    message = str(stop.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    assert expected in message, message
    assert "Traceback" not in capsys.readouterr().err
    assert not list(logs.rglob("*.ckpt"))


def test_the_process_exits_with_status_1_and_the_line_last_on_stderr(tmp_path):
    process = forked_train_py(["fit", "--config", IMDB, "--data.data_dir", "/no/such/dir"],
                              tmp_path / "stderr.txt")
    process.join(timeout=120)
    stderr = (tmp_path / "stderr.txt").read_text()
    assert process.exitcode == 1, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == (
        "error: data_dir '/no/such/dir' does not exist or is not a folder")
    assert "Traceback" not in stderr


def test_a_misspelled_key_and_a_broken_yaml_get_the_cli_own_message(tmp_path, capsys):
    (tmp_path / "typo.yaml").write_text("model:\n  init_args:\n    learnin_rate: 0.001\n")
    (tmp_path / "broken.yaml").write_text("model: [unclosed\n")
    for config, words in (("typo.yaml", "learnin_rate"), ("broken.yaml", "did not find expected")):
        with pytest.raises(SystemExit) as stop:
            main(["fit", "--config", QUICKSTART, "--config", str(tmp_path / config)])
        assert stop.value.code == 2
        assert words in capsys.readouterr().err  # jsonargparse's / the YAML parser's own words


def test_a_checkpoint_of_another_label_set_is_named(tiny_bert, tmp_path, shared_cache):
    rows = [{"text": f"review {i}", "label": ["bad", "okay", "good"][i % 3]} for i in range(60)]
    common = ["--data.cache_dir", str(shared_cache),
              "--trainer.logger.init_args.save_dir", str(tmp_path / "logs")]
    three = main(["fit", "--config", IMDB, "--model.backbone", tiny_bert, "--data.max_length", "128",
                  "--data.label_names", "[bad, okay, good]",
                  "--data.data_dir", write_rows(tmp_path / "three", rows),
                  "--test_after_fit", "false", "--trainer.max_epochs", "1", *common])
    checkpoint = tmp_path / "logs" / "imdb" / "distilbert" / "version_0" / "checkpoints" / "last.ckpt"
    assert three.trainer.checkpoint_callback.last_model_path == str(checkpoint)
    with pytest.raises(SystemExit) as stop:
        exit_on_user_error(lambda: main(["validate", "--config", QUICKSTART, "--model.backbone", tiny_bert,
                                         "--data.num_train", "64", "--data.num_test", "16",
                                         "--ckpt_path", str(checkpoint), *common]))
    assert str(stop.value.code).startswith("error: checkpoint does not fit this model (weight "
                                           "'model.classifier.bias' has shape (3,), this model (2,))")
