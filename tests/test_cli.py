"""Every config and overlay: each one builds, each code path trains a step on data the test
writes in the real formats (no ../shared needed), every overlay runs on a machine without CUDA
(the GPU overlays fall back; tests/test_scale.py runs the DDP overlay itself); and a run's
export reloads to its best checkpoint's logits."""

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import lightning
import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping
from peft import PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

import train
from core import cpu_precision
from core.errors import UserError
from datamodules.synthetic import generate
from lightning_modules.adapters import body, encoder_layers
from lightning_modules.classification import SequenceClassifier
from plugins.export import HFExport
from tests.distill_helpers import classifier
from tests.helpers import CONFIGS, QUICKSTART, checkpoint_weights, quick_args
from train import main

TASK_CONFIGS = sorted(str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml")
                      if p.name != "defaults.yaml" and p.parent.name not in ("overlays", "sweeps"))
OVERLAYS = sorted(p.stem for p in (CONFIGS / "overlays").glob("*.yaml"))


class Built(Exception):
    """Raised once the CLI has built the model, data module and trainer of a config."""


def test_the_task_configs_are_the_ones_the_readme_names():
    assert TASK_CONFIGS == [f"{task}/{arch}.yaml" for task in ("ag_news", "imdb")
                            for arch in ("bert-base", "distilbert", "tinybert")] + [
        f"mlm/{arch}-imdb.yaml" for arch in ("bert-base", "distilbert", "tinybert")] + ["quickstart.yaml"]


# LoRA wraps the model the same way whatever the data: once per task (model class) is enough
WITH_LORA = ["imdb/distilbert.yaml", "ag_news/bert-base.yaml", "mlm/distilbert-imdb.yaml"]


@pytest.mark.parametrize("config, overlay", [*((c, None) for c in TASK_CONFIGS),
                                             *((c, "lora") for c in WITH_LORA)])
def test_every_config_builds_alone_and_with_lora(config, overlay, tiny_bert, monkeypatch):
    def stop(cli):
        raise Built(cli)

    monkeypatch.setattr(train.CLI, "before_fit", stop)
    extra = ["--config", str(CONFIGS / "overlays" / f"{overlay}.yaml")] if overlay else []
    with pytest.raises(Built) as built:
        main(["fit", "--config", str(CONFIGS / config), *extra, "--model.backbone", tiny_bert,
              *([] if config.startswith(("mlm", "quickstart")) else ["--data.max_length", "128"])])
    cli = built.value.args[0]
    best = cli.trainer.checkpoint_callback
    assert (best.monitor, best.mode) == type(cli.model).MONITOR
    expected = config.removesuffix(".yaml") + (f"+{overlay}" if overlay else "")
    assert cli.trainer.logger.name == expected
    assert isinstance(cli.model.model, PeftModel) == (overlay == "lora")


@pytest.mark.parametrize("bf16_matmul, step_ms, precision", [
    (False, None, "32-true"), (True, (10, 20), "bf16-mixed"), (True, (30, 20), "32-true")])
def test_float16_on_the_cpu_becomes_the_precision_this_cpu_steps_the_model_faster_in(
        bf16_matmul, step_ms, precision, tiny_bert, tmp_path, monkeypatch):
    """Measured, not read off a flag: without native bf16 (oneDNN's flag says yes on Ice Lake) at
    once, else by a step of the model at the run's length (AMX: faster at 512, slower at 128)."""
    lengths = []

    def measure(config, length):
        lengths.append(length)
        return {"bf16_s": step_ms[0] / 1000, "fp32_s": step_ms[1] / 1000}

    monkeypatch.setattr(cpu_precision, "cpu_bf16_faster", lambda: bf16_matmul)
    monkeypatch.setattr(cpu_precision, "measure", measure)
    monkeypatch.setattr(cpu_precision, "CACHE", tmp_path / "cpu_precision.json")
    monkeypatch.setattr(train.CLI, "before_fit", lambda cli: (_ for _ in ()).throw(Built(cli)))
    with pytest.warns(UserWarning, match=f"precision={precision} \\("), pytest.raises(Built) as built:
        main(["fit", "--config", QUICKSTART, "--model.backbone", tiny_bert, "--trainer.accelerator", "auto",
              "--trainer.precision", "16-mixed", "--data.max_length", "48"])
    assert built.value.args[0].trainer.precision == precision
    assert lengths == ([48] if bf16_matmul else [])


@pytest.mark.parametrize("given", ["bf16-mixed", "32-true"])
def test_a_precision_given_other_than_16_bit_is_obeyed_on_the_cpu(given, tiny_bert, monkeypatch):
    monkeypatch.setattr(cpu_precision, "cpu_bf16_faster", lambda: given == "32-true")
    monkeypatch.setattr(cpu_precision, "measure", lambda config, length: pytest.fail("measured"))
    monkeypatch.setattr(train.CLI, "before_fit", lambda cli: (_ for _ in ()).throw(Built(cli)))
    with pytest.raises(Built) as built:
        main(["fit", "--config", QUICKSTART, "--model.backbone", tiny_bert, "--trainer.accelerator", "cpu",
              "--trainer.precision", given])
    assert built.value.args[0].trainer.precision == given


def test_the_precision_probe_is_cached_by_what_it_measured(tiny_bert, tiny_distilbert, tmp_path, monkeypatch):
    """Measured once per architecture and length on this CPU; the run's random streams untouched."""
    measured = []
    real = cpu_precision.measure

    def counted(config, length):
        measured.append((config.model_type, length))
        return real(config, length)

    monkeypatch.setattr(cpu_precision, "cpu_bf16_faster", lambda: True)
    monkeypatch.setattr(cpu_precision, "measure", counted)
    cache = tmp_path / "probe.json"
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    for backbone, length in ((tiny_bert, 16), (tiny_bert, 16), (tiny_bert, 32), (tiny_distilbert, 16)):
        precision, why = cpu_precision.cpu_precision(backbone, length, cache=cache)
        assert precision in ("bf16-mixed", "32-true") and f"at {length} tokens took" in why
    assert torch.equal(torch.rand(3), expected)
    assert measured == [("bert", 16), ("bert", 32), ("distilbert", 16)]
    assert len(json.loads(cache.read_text())) == 3
    assert "measured earlier" in cpu_precision.cpu_precision(tiny_bert, 32, cache=cache)[1]


def aclimdb(folder: Path) -> str:
    """The original IMDB layout: train/{pos,neg}/{id}_{rating}.txt, test/..."""
    for split, seed in (("train", 0), ("test", 1)):
        for row in generate(40, seed):
            label = "pos" if row["label"] else "neg"
            path = folder / split / label / f"{len(list(folder.rglob('*.txt')))}_7.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(row["text"])
    return str(folder)


def ag_news_csv(folder: Path) -> str:
    """The original AG News CSV: no header, class 1-4, title, description."""
    folder.mkdir(parents=True)
    for split, n in (("train", 80), ("test", 20)):
        rows = [f'"{i % 4 + 1}","title {i}","{text}"' for i, text in enumerate(generate(n, 0)["text"])]
        (folder / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return str(folder)


def text_files(folder: Path) -> str:
    """Plain-text split files, one text per line, as an MLM corpus."""
    folder.mkdir(parents=True)
    for split, seed in (("train", 0), ("test", 1)):
        (folder / f"{split}.txt").write_text("\n".join(generate(200, seed)["text"]) + "\n")
    return str(folder)


PATHS = {
    "imdb/distilbert.yaml": (aclimdb, ["--data.max_length", "128"]),
    "ag_news/bert-base.yaml": (ag_news_csv, ["--data.max_length", "128"]),
    "mlm/tinybert-imdb.yaml": (text_files, ["--data.train_splits", "[train]", "--data.block_size", "32"]),
}


@pytest.mark.parametrize("config", PATHS)
def test_each_data_path_trains_a_step_from_files_in_its_format(config, tiny_bert, tmp_path, shared_cache):
    write, options = PATHS[config]
    cli = main(["fit", "--config", str(CONFIGS / config), "--model.backbone", tiny_bert,
                "--data.data_dir", write(tmp_path / "data"), "--data.num_workers", "0", *options,
                "--data.cache_dir", str(shared_cache), "--trainer.fast_dev_run", "1"])
    assert cli.trainer.global_step == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_trains_a_step_on_a_machine_without_cuda(overlay, tiny_bert, tmp_path, shared_cache):
    stacked = str(CONFIGS / "overlays" / f"{overlay}.yaml")
    fits = ["--model.freeze_layers", "1"] if overlay == "freeze" else []  # the tiny model has 2 layers
    if overlay == "distill":  # it needs a teacher: any classifier of the tiny model's vocabulary
        fits = ["--model.teacher", classifier(tiny_bert, tmp_path / "teacher", ["neg", "pos"])]
    cli = main(quick_args(tiny_bert, tmp_path, shared_cache, "--config", stacked, *fits,
                          "--trainer.fast_dev_run", "1"))
    assert cli.trainer.global_step == 1 and cli.trainer.world_size == 1
    assert OVERLAY_TOOK_EFFECT[overlay](cli)


def trains(module) -> list[bool]:
    return sorted({p.requires_grad for p in module.parameters()})


# what each overlay changes, seen in the run it was stacked on
OVERLAY_TOOK_EFFECT = {
    "ddp": lambda cli: cli.trainer.accelerator.__class__.__name__ == "CPUAccelerator",  # the fallback
    "fsdp": lambda cli: cli.trainer.gradient_clip_val is None,
    "early_stopping": lambda cli: any(isinstance(c, EarlyStopping) and c.monitor == "val/acc"
                                      for c in cli.trainer.callbacks),
    "freeze": lambda cli: trains(encoder_layers(cli.model.model)[1]) == [True]
    and trains(encoder_layers(cli.model.model)[0]) == trains(body(cli.model.model).embeddings) == [False],
    "lora": lambda cli: isinstance(cli.model.model, PeftModel),
    "distill": lambda cli: cli.model.distiller is not None,
}


def test_export_reloads_to_the_same_logits_as_the_best_checkpoint(trained_runs, tiny_distilbert):
    run = Path(trained_runs["full"].trainer.log_dir)
    best = Path(trained_runs["full"].trainer.checkpoint_callback.best_model_path)
    module = SequenceClassifier(tiny_distilbert, ["neg", "pos"]).eval()
    module.model.load_state_dict(checkpoint_weights(best))
    reloaded = AutoModelForSequenceClassification.from_pretrained(run / "hf_model").eval()
    tokenizer = AutoTokenizer.from_pretrained(run / "hf_model")
    batch = tokenizer(["the movie was not dull.", "the plot was awful, but the cast was superb."],
                      padding=True, return_tensors="pt")
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert any(not torch.equal(v, last[f"model.{k}"]) for k, v in module.model.state_dict().items())
    with torch.no_grad():
        logits = reloaded(**batch).logits
        assert torch.allclose(module.model(**batch).logits, logits, atol=1e-5)
    assert reloaded.config.id2label == {0: "neg", 1: "pos"}
    classify = pipeline("text-classification", model=str(run / "hf_model"))
    texts = ["the movie was not dull.", "the plot was awful, but the cast was superb."]
    assert [p["label"] for p in classify(texts)] == [["neg", "pos"][i] for i in logits.argmax(-1)]


def renamed(state: dict) -> dict:
    return {k.replace("model.bert.", "model.encoder."): v for k, v in state.items()}


def without_head_bias(state: dict) -> dict:
    return {k: v for k, v in state.items() if k != "model.classifier.bias"}


@pytest.mark.parametrize("change, problem", [(renamed, "unexpected weight 'model.encoder.embeddings"),
                                             (without_head_bias, "missing weight 'model.classifier.bias'")])
def test_export_refuses_a_best_checkpoint_that_does_not_fit(change, problem, tiny_bert, tmp_path):
    """Loading it "as far as it fits" would export the last weights under the best one's name."""
    module = SequenceClassifier(tiny_bert, ["neg", "pos"])
    torch.save({"state_dict": change(module.state_dict()), "hyper_parameters": dict(module.hparams),
                "pytorch-lightning_version": lightning.__version__}, tmp_path / "best.ckpt")
    best = SimpleNamespace(best_model_path=str(tmp_path / "best.ckpt"))
    trainer = SimpleNamespace(checkpoint_callback=best,
                              datamodule=SimpleNamespace(tokenizer=AutoTokenizer.from_pretrained(tiny_bert)))
    with pytest.raises(UserError) as caught:
        HFExport().export(trainer, module, tmp_path / "run")
    assert str(caught.value).startswith(f"checkpoint does not fit this model ({problem}")
    assert not (tmp_path / "run" / "hf_model").exists()


def test_validate_in_an_existing_run_folder_reuses_it(trained_runs, tiny_distilbert, tmp_path, shared_cache):
    run = Path(trained_runs["full"].trainer.log_dir)
    copy = tmp_path / "logs" / "full" / "version_0"
    shutil.copytree(run, copy)
    cli = main(["validate", "--config", QUICKSTART, "--model.backbone", tiny_distilbert,
                "--data.num_train", "192", "--data.num_test", "48", "--data.cache_dir", str(shared_cache),
                "--trainer.logger.init_args.save_dir", str(tmp_path / "logs"),
                "--trainer.logger.init_args.name", "full", "--trainer.logger.init_args.version", "0",
                "--ckpt_path", str(copy / "checkpoints" / "last.ckpt")])
    assert Path(cli.trainer.log_dir) == copy and not (copy.parent / "version_1").exists()


def test_test_with_a_runs_checkpoint_logs_into_that_run_beside_its_config(trained_runs, tiny_distilbert,
                                                                          tmp_path, shared_cache):
    """No new version_N, and the fit's own config.yaml stays as the fit wrote it."""
    run = Path(trained_runs["full"].trainer.log_dir)
    copy = tmp_path / "logs" / "full" / "version_0"
    shutil.copytree(run, copy)
    fitted = (copy / "config.yaml").read_text()
    cli = main(["test", "--config", QUICKSTART, "--model.backbone", tiny_distilbert,
                "--data.num_train", "192", "--data.num_test", "48", "--data.cache_dir", str(shared_cache),
                "--trainer.logger.init_args.save_dir", str(tmp_path / "other-logs"),
                "--ckpt_path", str(copy / "checkpoints" / "last.ckpt")])
    assert Path(cli.trainer.log_dir) == copy and not (tmp_path / "other-logs").exists()
    assert (copy / "config.yaml").read_text() == fitted
    assert (copy / "config-test.yaml").is_file()
