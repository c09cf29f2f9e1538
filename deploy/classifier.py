"""The deployed model from Python, answering as `transformers.pipeline("text-classification")` does:

    from deploy.classifier import load
    model = load("logs/imdb/distilbert/version_0/hf_model", runtime="onnx-int8")
    model(["A moving, beautifully shot film.", "Dull."])          # [{"label": "pos", "score": 0.97}, ...]
    model("Dull.", top_k=None)                                     # every label, most likely first

`predict.py` streams files through the same object (`deploy/prediction.py`)."""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from core.errors import UserError, at_least, check
from core.pretrained import load_tokenizer
from deploy.layout import (
    WEIGHTS,
    checks_record,
    classifier_labels,
    model_limit,
    onnx_file,
    trained_max_length,
    weights_digest,
)
from deploy.runtimes import RUNTIMES, OrtRuntime, TorchRuntime, require
from deploy.streaming import Predictor, softmax
from deploy.threads import cpu_threads, tokenizer_threads

log = logging.getLogger(__name__)
Runtime = Literal["torch", "onnx", "onnx-int8"]
COMPILE_SECONDS = 40  # a cold torch.compile of MiniLM on the 2-core CPUs: 25 s on the AMD EPYC,
# 34 to 42 s more a process than uncompiled on the Intel Xeon (docs/deploy.md)


@dataclass
class ExportFiles:
    """What an export folder gives a runtime, found and checked before any model loads."""

    folder: Path
    runtime: str
    onnx: Path | None  # the ONNX file; None: PyTorch's weights
    tokenizer: object
    labels: list[str]
    max_length: int

    def record(self) -> dict:
        """What predictions of these files are told apart by (`deploy.output`): the weights, the
        runtime, the tokens per text."""
        onnx_dir = self.onnx and self.onnx.parent
        weights = checks_record(onnx_dir)["weights_sha256"] if onnx_dir else weights_digest(self.folder)
        return {"weights_sha256": weights, "runtime": self.runtime, "max_length": self.max_length}


def export_files(model: str | Path, runtime: str, max_length: int | None) -> ExportFiles:
    """The files of an export folder for `runtime`, with the tokens per text: `max_length`, else
    the length the export was trained at (one line says which and where it comes from)."""
    check("runtime", runtime, runtime in RUNTIMES, " or ".join(RUNTIMES))
    at_least("max_length", max_length, 3, optional=True)
    folder = Path(model).expanduser()
    labels = classifier_labels(folder)
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
    limit = model_limit(model_dir)
    check("--max_length", max_length, max_length <= limit, f"at most the model's limit, {limit} tokens")
    return ExportFiles(folder, runtime, path, tokenizer, labels, max_length)


def check_options(threads: int | None, batch_size: int) -> None:
    at_least("--threads", threads, 1, optional=True)
    at_least("--batch_size", batch_size, 1)


def device_of(runtime: str, device: str | None) -> str:
    """`device`, checked, else the GPU for PyTorch where there is one and the CPU otherwise."""
    check("--device", device, device in (None, "cpu", "cuda"), "cpu or cuda")
    if runtime == "torch":
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            raise UserError("--device cuda: PyTorch sees no CUDA device here; use --device cpu")
        return device or ("cuda" if torch.cuda.is_available() else "cpu")
    return device or "cpu"


class Classifier:
    """An export, loaded to predict: call it on texts.

    Args:
        files: the export's files (`export_files`).
        device: cpu or cuda (None: the GPU for PyTorch where there is one).
        threads: CPU threads of the model and the tokenizer (None: OMP_NUM_THREADS, else every core).
        batch_size: texts per batch.
        compile: run PyTorch's model through torch.compile (frozen weights).
        path: how PyTorch runs on the CPU (a name of `deploy.cpu_paths.PATHS`); None: the fastest,
            measured on the first texts.
    """

    def __init__(self, files: ExportFiles, device: str | None = None, threads: int | None = None,
                 batch_size: int = 32, compile: bool = False, path: str | None = None):
        check_options(threads, batch_size)
        self.files, self.labels, self.max_length = files, files.labels, files.max_length
        self.device, self.threads = device_of(files.runtime, device), cpu_threads(threads)
        tokenizer_threads(self.threads)
        if files.onnx is None:
            if compile:
                log.info("compiling the model (torch.compile; --compile false runs it as it is): about %d s "
                         "on a 2-core CPU with an empty cache, before the first batch", COMPILE_SECONDS)
            engine = TorchRuntime(files.folder, files.tokenizer.pad_token_id, files.max_length, self.threads,
                                  compile, self.device, path)
        else:
            engine = OrtRuntime(files.onnx, files.tokenizer.pad_token_id, self.threads, self.device)
        self.runtime = engine
        self.predictor = Predictor(engine, files.tokenizer, files.max_length, batch_size)

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """[texts, classes] probabilities, classes in the order of `labels`."""
        return softmax(self.predictor.logits(list(texts)))

    def __call__(self, texts: str | list[str], top_k: int | None = 1) -> list:
        """What `pipeline("text-classification")` answers: for each text its most likely label and
        its probability (`top_k=1`, as the pipeline without top_k: one dict per text), or a list of
        its `top_k` most likely (None: every label), most likely first."""
        check("top_k", top_k, top_k is None or (type(top_k) is int and top_k >= 1),
              "a number of labels >= 1, or None for every label")
        single = isinstance(texts, str)
        if not single and not all(isinstance(text, str) for text in texts):
            raise UserError("texts: expected a text or a list of texts")
        if not single and not texts:
            return []
        probs = self.probabilities([texts] if single else texts)
        answers = []
        for row in probs.tolist():
            ranked = sorted(({"label": name, "score": score} for name, score in zip(self.labels, row)),
                            key=lambda answer: -answer["score"])
            answers.append(ranked[0] if top_k == 1 else ranked[:top_k])
        return answers[0] if single and top_k != 1 else answers

    @property
    def path(self) -> str:
        """How the model runs: PyTorch's path on this CPU (known after the first texts), or the device."""
        return self.runtime.path or "not chosen yet"


def load(model: str | Path, runtime: Runtime = "torch", device: str | None = None, threads: int | None = None,
         max_length: int | None = None, batch_size: int = 32, compile: bool = False) -> Classifier:
    """An export folder (a run's hf_model/, or its onnx/ folder for the ONNX runtimes), ready to
    predict; the options are predict.py's.

    Args:
        model: export folder.
        runtime: torch (hf_model/ weights), onnx (onnx/model.onnx) or onnx-int8 (onnx/model.int8.onnx).
        device: cpu or cuda (None: the GPU for PyTorch where there is one).
        threads: CPU threads (None: OMP_NUM_THREADS, else every core).
        max_length: tokens per text (None: the length the export was trained at).
        batch_size: texts per batch.
        compile: run PyTorch's model through torch.compile.
    """
    return Classifier(export_files(model, runtime, max_length), device, threads, batch_size, compile)

