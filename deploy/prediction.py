"""`python predict.py MODEL INPUT`: every text of a file of any size through an export
(`deploy.classifier`), streaming; the options are `predict`'s arguments."""

import logging
import sys
import time
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from core.errors import UserError, at_least, check
from deploy.classifier import Classifier, check_options, device_of, export_files
from deploy.output import OutputFile
from deploy.texts import TextFile, input_file

log = logging.getLogger(__name__)


# tokens of work above which predict.py compiles PyTorch's model on the CPU by default. Measured on
# the 2-core AMD EPYC (benchmarks/inference.py, MiniLM, 2,000 texts, compiling included): 2,000 IMDB
# reviews (540,000 tokens) took 55 s compiled and 67 s uncompiled with 2 threads, 98 s and 116 s with
# one, so compiling pays back after some 250,000 tokens of long texts; 2,000 AG News articles
# (105,000 tokens) took 14 s compiled and 8 s uncompiled
COMPILE_ABOVE = 400_000
CHARACTERS_PER_TOKEN = 4  # about, for English text and a WordPiece vocabulary


class Stopped(SystemExit):
    """The prediction stopped by Ctrl-C (status 130) or SIGTERM (143), its output whole rows."""


def compiles(tokens: float, device: str) -> bool:
    """Whether compiling pays back: on the CPU, for more than COMPILE_ABOVE tokens of work."""
    return device == "cpu" and tokens > COMPILE_ABOVE


def text_tokens(text: str, max_length: int) -> int:
    """About how many tokens `text` is cut to, from its characters."""
    return min(len(text) // CHARACTERS_PER_TOKEN + 2, max_length)


def predict(model: str, input: str, output: str = "predictions.csv",
            runtime: Literal["torch", "onnx", "onnx-int8"] = "torch", text_fields: list[str] = ["text"],
            keep_columns: list[str] = [], max_length: int | None = None, batch_size: int = 32,
            chunk_size: int = 1024, threads: int | None = None, device: Literal["cpu", "cuda"] | None = None,
            compile: bool | None = None, resume: bool = False, overwrite: bool = False) -> dict:
    """Predict the label of every text of a file with an exported model, streaming.

    Texts go in batches of about one length; rows are written as they are predicted, in input
    order, so memory does not grow with the file and a stopped prediction leaves whole rows.

    Args:
        model: export folder: a run's hf_model/ (any runtime), or its onnx/ folder (onnx runtimes).
        input: texts: .txt (one per line, blank lines skipped), .jsonl, .csv or .parquet; may be .gz.
        output: .csv or .jsonl file: the kept columns (a .txt file's line number), text, label and
            prob_<class> for each input row, in input order.
        runtime: torch (hf_model/ weights), onnx (onnx/model.onnx) or onnx-int8 (onnx/model.int8.onnx).
        text_fields: columns joined with a space into the text (.jsonl, .csv, .parquet).
        keep_columns: columns of the input written beside each prediction (.jsonl, .csv, .parquet).
        max_length: tokens per text; by default the length the export was trained at.
        batch_size: texts per batch.
        chunk_size: texts read, sorted by length and held in memory at a time.
        threads: CPU threads (tokenizer, PyTorch, ONNX Runtime); by default OMP_NUM_THREADS, else
            every core.
        device: cpu or cuda; by default the GPU for PyTorch where there is one, else the CPU.
        compile: run PyTorch's model through torch.compile (about 40 s first on a 2-core CPU with an
            empty cache, then faster batches); by default on the CPU for over 400,000 tokens of
            work (COMPILE_ABOVE).
        resume: go on with an output that a stopped prediction left (its rows and what wrote it
            are checked).
        overwrite: replace an existing output.
    """
    at_least("--chunk_size", chunk_size, 1)
    check_options(threads, batch_size)
    check("--overwrite", overwrite, not (resume and overwrite), "false with --resume")
    texts = TextFile(input_file(input), text_fields, keep_columns)
    out_path = Path(output).expanduser()
    if out_path.exists() and out_path.resolve() == texts.file.resolve():
        raise UserError(f"--output {output} is the input file")
    if out_path.exists() and not (resume or overwrite):
        raise UserError(f"{output} exists: --resume goes on with it, --overwrite replaces it")
    files = export_files(model, runtime, max_length)
    device = device_of(runtime, device)
    out = OutputFile(out_path, files.labels, texts.kept, files.record())
    count = tokens = 0
    for _, text in texts:  # every row checked before the model loads
        count, tokens = count + 1, tokens + text_tokens(text, files.max_length)
    if not count:
        raise UserError(f"input file '{input}' holds no text")
    if texts.blank_lines_note():
        log.warning(texts.blank_lines_note())
    rows = iter(texts)
    done = out.resume(text for _, text in rows) if resume and out_path.exists() else 0
    if compile is None:
        compile = runtime == "torch" and compiles(tokens * (count - done) / count, device)
    began = out.written_record() if done else None  # a resume runs PyTorch as the rows before it ran
    classifier = Classifier(files, device, threads, batch_size, compile, began and began.get("path"))
    classifier.predictor.chunk_size = chunk_size
    if done:
        log.info("%s holds %d whole rows: going on from row %d", output, done, done + 1)
    else:
        out.start()
    started, first = time.perf_counter(), done
    try:
        with tqdm(total=count, initial=done, unit=" texts", desc=runtime, smoothing=0.05) as bar:
            for chunk, probs in classifier.predictor.stream(rows, bar.update, text=lambda row: row[1]):
                out.write(chunk, probs)
                done += len(chunk)
                if out.record.get("path") != classifier.path:
                    out.save_record(path=classifier.path)
    except (KeyboardInterrupt, Stopped) as stop:  # the process's last line, as a stopped train.py's
        print(f"stopped after {done:,} of {count:,} texts: {output} holds their predictions, whole rows "
              "in input order; the same command with --resume true goes on", file=sys.stderr)
        raise Stopped(stop.code if isinstance(stop, Stopped) else 130) from None
    seconds = time.perf_counter() - started
    speed = (done - first) / seconds if seconds else 0.0
    cut = classifier.predictor.cut
    log.info("predicted %d texts in %.2f s: %.1f texts/s (%s, %s, %d threads); %d cut at %d tokens -> %s",
             done - first, seconds, speed, runtime, classifier.path, classifier.threads, cut,
             files.max_length, output)
    return {"texts": done - first, "seconds": seconds, "texts_per_second": speed, "cut": cut,
            "path": classifier.path, "output": str(out_path)}

