"""`python predict.py MODEL INPUT`: every text of a file of any size through an export, streaming;
the options are `predict`'s arguments."""

import logging
import os
import sys
import time
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from core.errors import UserError, at_least, check
from core.pretrained import load_tokenizer
from deploy.layout import WEIGHTS, classifier_labels, model_limit, onnx_file, trained_max_length
from deploy.output import OutputFile
from deploy.runtimes import OrtRuntime, TorchRuntime, require
from deploy.streaming import Predictor
from deploy.texts import TextFile, input_file

log = logging.getLogger(__name__)


# tokens of work above which predict.py compiles PyTorch's model on the CPU by default. Measured on
# the 2-core CPU (benchmarks/inference.py, MiniLM, 2,000 texts, compiling included): 2,000 IMDB
# reviews (540,000 tokens) took 55 s compiled and 67 s uncompiled with 2 threads, 98 s and 116 s with
# one, so compiling (12 to 15 s) pays back after some 250,000 tokens of long texts; 2,000 AG News
# articles (105,000 tokens) took 14 s compiled and 8 s uncompiled
COMPILE_ABOVE = 400_000
CHARACTERS_PER_TOKEN = 4  # about, for English text and a WordPiece vocabulary


class Stopped(SystemExit):
    """The prediction stopped by Ctrl-C (status 130) or SIGTERM (143), its output whole rows."""


def export_files(folder: Path, runtime: str, max_length: int | None):
    """(the ONNX file, None for PyTorch's weights; the tokenizer; max tokens per text) of an export
    folder, checked before any model loads."""
    path = None
    if runtime == "torch" and not (folder / WEIGHTS).is_file():
        raise UserError(f"'{folder}' has no PyTorch weights ({WEIGHTS}): use --runtime onnx or onnx-int8 "
                        "on an onnx/ folder")
    if runtime != "torch":
        require(("onnxruntime",), f"--runtime {runtime}")
        path = onnx_file(folder, runtime)
    model_dir = folder if path is None else path.parent
    tokenizer = load_tokenizer(str(model_dir))
    if max_length is None:
        max_length, source = trained_max_length(model_dir, tokenizer)
        log.info("texts cut to %d tokens (%s; --max_length sets another)", max_length, source)
    limit = model_limit(model_dir, tokenizer)
    check("--max_length", max_length, max_length <= limit, f"at most the model's limit, {limit} tokens")
    return path, tokenizer, max_length


def engine(folder: Path, path: Path | None, tokenizer, max_length: int, threads: int | None,
           compile: bool):
    """The runtime that turns batches of token ids into logits: ONNX Runtime on `path`, else PyTorch."""
    if path is not None:
        return OrtRuntime(path, tokenizer.pad_token_id, threads)
    if compile:
        log.info("compiling the model (torch.compile; --compile false runs it as it is): about 15 s "
                 "on a 2-core CPU before the first batch")
    return TorchRuntime(folder, tokenizer.pad_token_id, max_length, threads, compile)


def open_runtime(folder: Path, runtime: str, threads: int | None, max_length: int | None,
                 compile: bool = False):
    """(runtime, tokenizer, max tokens per text) for an export folder."""
    path, tokenizer, max_length = export_files(folder, runtime, max_length)
    return engine(folder, path, tokenizer, max_length, threads, compile), tokenizer, max_length


def compiles(tokens: float) -> bool:
    """Whether compiling pays back: on the CPU, for more than COMPILE_ABOVE tokens of work."""
    import torch

    return not torch.cuda.is_available() and tokens > COMPILE_ABOVE


def text_tokens(text: str, max_length: int) -> int:
    """About how many tokens `text` is cut to, from its characters."""
    return min(len(text) // CHARACTERS_PER_TOKEN + 2, max_length)


def predict(model: str, input: str, output: str = "predictions.csv",
            runtime: Literal["torch", "onnx", "onnx-int8"] = "torch", text_fields: list[str] = ["text"],
            max_length: int | None = None, batch_size: int = 32, chunk_size: int = 1024,
            threads: int | None = None, compile: bool | None = None, resume: bool = False,
            overwrite: bool = False) -> dict:
    """Predict the label of every text of a file with an exported model, streaming.

    Texts go in batches of about one length; rows are written as they are predicted, in input
    order, so memory does not grow with the file and a stopped prediction leaves whole rows.

    Args:
        model: export folder: a run's hf_model/ (any runtime), or its onnx/ folder (onnx runtimes).
        input: texts: .txt (one per line, blank lines skipped), .jsonl, .csv or .parquet; may be .gz.
        output: .csv or .jsonl file: text, label and prob_<class> for each input row, in input order.
        runtime: torch (hf_model/ weights), onnx (onnx/model.onnx) or onnx-int8 (onnx/model.int8.onnx).
        text_fields: columns joined with a space into the text (.jsonl, .csv, .parquet).
        max_length: tokens per text; by default the run's data.max_length, else the model's limit.
        batch_size: texts per batch.
        chunk_size: texts read, sorted by length and held in memory at a time.
        threads: CPU threads (tokenizer, PyTorch, ONNX Runtime); by default every core.
        compile: run PyTorch's model through torch.compile (12 to 15 s first on a 2-core CPU, then
            faster batches); by default on the CPU for over 400,000 tokens of work (COMPILE_ABOVE).
        resume: go on with an output that a stopped prediction left (its rows are checked).
        overwrite: replace an existing output.
    """
    for option, value in (("--batch_size", batch_size), ("--chunk_size", chunk_size)):
        at_least(option, value, 1)
    at_least("--threads", threads, 1, optional=True)
    at_least("--max_length", max_length, 3, optional=True)
    check("--overwrite", overwrite, not (resume and overwrite), "false with --resume")
    texts = TextFile(input_file(input), text_fields)
    folder, out_path = Path(model).expanduser(), Path(output).expanduser()
    if out_path.exists() and out_path.resolve() == texts.file.resolve():
        raise UserError(f"--output {output} is the input file")
    if out_path.exists() and not (resume or overwrite):
        raise UserError(f"{output} exists: --resume goes on with it, --overwrite replaces it")
    out = OutputFile(out_path, classifier_labels(folder))
    path, tokenizer, max_length = export_files(folder, runtime, max_length)
    count = tokens = 0
    for text in texts:  # every row checked before the model loads
        count, tokens = count + 1, tokens + text_tokens(text, max_length)
    if not count:
        raise UserError(f"input file '{input}' holds no text")
    if texts.blank_lines_note():
        log.warning(texts.blank_lines_note())
    if threads:  # the tokenizer's own pool would take every core
        os.environ["TOKENIZERS_PARALLELISM"] = "true" if threads > 1 else "false"
    rows = iter(texts)
    done = out.resume(rows) if resume and out_path.exists() else 0
    if compile is None:
        compile = path is None and compiles(tokens * (count - done) / count)
    predictor = Predictor(engine(folder, path, tokenizer, max_length, threads, compile), tokenizer,
                          max_length, batch_size, chunk_size)
    if done:
        log.info("%s holds %d whole rows: going on from row %d", output, done, done + 1)
    else:
        out.start()
    started, first = time.perf_counter(), done
    try:
        with tqdm(total=count, initial=done, unit=" texts", desc=runtime, smoothing=0.05) as bar:
            for chunk, probs in predictor.stream(rows, bar.update):
                out.write(chunk, probs)
                done += len(chunk)
    except (KeyboardInterrupt, Stopped) as stop:  # the process's last line, as a stopped train.py's
        print(f"stopped after {done:,} of {count:,} texts: {output} holds their predictions, whole rows "
              "in input order; the same command with --resume true goes on", file=sys.stderr)
        raise Stopped(stop.code if isinstance(stop, Stopped) else 130) from None
    seconds = time.perf_counter() - started
    speed = (done - first) / seconds if seconds else 0.0
    log.info("predicted %d texts in %.1f s: %.1f texts/s (%s, %s threads) -> %s", done - first, seconds,
             speed, runtime, threads or "all", output)
    return {"texts": done - first, "seconds": seconds, "texts_per_second": speed, "output": str(out_path)}
