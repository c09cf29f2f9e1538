"""An export folder's `onnx/`: `model.onnx` from torch's exporter (torch.export based: the older
TorchScript tracer baked a sequence length into transformers 5's masks, its logits off by 0.02),
with dynamic batch and sequence axes, and `model.int8.onnx` from ONNX Runtime's dynamic
quantization (int8 weights for every MatMul of the encoder and the embedding tables, activations
quantized on the fly; the pooler and the classifier head stay fp32), with the tokenizer and config
beside them, its `model_max_length` the trained length, so the folder ships alone. The MatMul
weights take a scale per output channel (the quickstart's MiniLM, trained on generated reviews,
kept its fp32 label on 94.8% of 500 IMDB reviews so, 85.6% with one scale per tensor, at the same
speed); ONNX Runtime gives each embedding table one scale. Each file is written under a temporary
name and takes its own only after its check (`deploy.checks`) passed."""

import contextlib
import inspect
import io
import logging
import shutil
import time
import warnings
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification

from core.console import verbose
from core.pretrained import from_pretrained, load_tokenizer
from deploy import checks
from deploy.cpu_paths import PLAIN
from deploy.layout import (
    CHECKS,
    EXPORT_MODULES,
    FILES,
    ONNX_DIR,
    RUNTIME_FILES,
    classifier_labels,
    record_max_length,
    weights_digest,
)
from deploy.runtimes import OrtRuntime, TorchRuntime, require

log = logging.getLogger(__name__)
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
NOISY_LOGGERS = ("torch.onnx", "onnxscript", "onnx_ir")
# opset 23 has ONNX's own Attention operator, which ONNX Runtime runs fused: MiniLM on 512-token
# IMDB reviews, 2 threads, went from 13.9 to 31.0 texts/s (fp32) against the default opset's
# MatMul-Softmax-MatMul, whose score matrices PyTorch's SDPA never writes out
OPSET = 23
# what dynamic quantization turns to int8: the weights of every MatMul and the embeddings (Gather);
# left to its defaults, it takes ONNX's Attention for ONNX Runtime's own and writes an invalid model
QUANTIZED_OPS = ["MatMul", "Gather"]
HEAD = ("pooler", "classifier")  # weights whose names hold these stay fp32: a few KB, and the logits
EXAMPLE = ["an example", "a longer example, so that the two texts differ in length"]


class Logits(torch.nn.Module):
    """The classifier with its logits as the graph's one output."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits


@contextlib.contextmanager
def quiet_exporters():
    """torch.onnx prints each step of its export with a tick, warns that it merged the axis names we
    gave (batch, sequence) with their equals and logs that torchvision (which we do not use) is
    missing; torch.export warns that its own pytree code uses a deprecated LeafSpec; onnxscript and
    onnx_ir log each of their graph passes (hundreds of lines); ONNX Runtime's quantizer logs, to the
    root logger, each tensor it leaves in float and advice on a pre-processing whose shape inference
    fails on torch.export graphs. None of it is news about the export, whose checks follow (the root
    logger is otherwise silent here); their errors still show; BERT_LIGHTNING_VERBOSE=1 shows all."""
    if verbose():
        yield
        return
    root, loggers = logging.getLogger(), [logging.getLogger(name) for name in NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]

    def hide(record: logging.LogRecord) -> bool:
        return record.name != "root" or record.levelno >= logging.ERROR

    root.addFilter(hide)
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"torch\.onnx")
        warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)`", FutureWarning)
        try:
            yield
        finally:
            root.removeFilter(hide)
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def export_fp32(folder: Path, path: Path, tokenizer) -> None:
    model = from_pretrained(AutoModelForSequenceClassification, str(folder), "model").eval()
    accepted = inspect.signature(model.forward).parameters
    names = [n for n in INPUTS if n in accepted and n in tokenizer.model_input_names]
    example = tokenizer(EXAMPLE, padding=True, return_tensors="pt")
    batch = torch.export.Dim("batch")
    sequence = torch.export.Dim("sequence", max=model.config.max_position_embeddings)
    with quiet_exporters():
        torch.onnx.export(Logits(model).eval(), tuple(example[n] for n in names), str(path),
                          input_names=names, output_names=["logits"], opset_version=OPSET, dynamo=True,
                          external_data=False, dynamic_shapes=tuple({0: batch, 1: sequence} for _ in names))


def kept_in_fp32(source: Path) -> list[str]:
    """The nodes dynamic quantization leaves alone: the pooler's and the classifier's (a Gemm, which
    the quantizer turns into a MatMul named after it first, so both names), and every Gather of
    activations rather than of an embedding table (the first token's row for the head)."""
    import onnx

    graph = onnx.load(str(source), load_external_data=False).graph
    weights = {initializer.name for initializer in graph.initializer}
    head = [node.name for node in graph.node
            if any(part in name for name in node.input if name in weights for part in HEAD)]
    gathers = [node.name for node in graph.node if node.op_type == "Gather" and node.input[0] not in weights]
    return [*head, *(f"{name}_MatMul" for name in head), *gathers]


def quantize(source: Path, path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with quiet_exporters():
        quantize_dynamic(str(source), str(path), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=QUANTIZED_OPS, nodes_to_exclude=kept_in_fp32(source))


def write_onnx(folder: Path, texts: list[str], labels: list[int], max_length: int,
               max_int8_drop: float = 1.0, threads: int | None = None, max_test_texts: int = 2000) -> dict:
    """`folder/onnx/` for an export folder, checked on `texts` (the run's test texts, of which at
    most `max_test_texts`, with their `labels`, measure each file's accuracy); returns what
    `checks.json` records."""
    require(EXPORT_MODULES, "ONNX export")
    classifier_labels(folder)
    out = folder / ONNX_DIR
    out.mkdir(exist_ok=True)
    tokenizer = load_tokenizer(str(folder))
    fp32, int8 = (out / FILES[runtime] for runtime in ("onnx", "onnx-int8"))
    staged = {path: path.with_name(path.name + ".partial") for path in (fp32, int8)}
    started = time.perf_counter()
    export_fp32(folder, staged[fp32], tokenizer)
    torch_runtime = TorchRuntime(folder, tokenizer.pad_token_id, max_length, path=PLAIN)
    exported = OrtRuntime(staged[fp32], tokenizer.pad_token_id, threads)
    found = {"weights_sha256": weights_digest(folder), "max_length": max_length,
             "check": checks.check_logits(torch_runtime, exported, tokenizer, texts, max_length)}
    staged[fp32].replace(fp32)
    quantize(fp32, staged[int8])
    # the checked session stays: ONNX Runtime holds the model in memory, under any file name
    quantized = OrtRuntime(staged[int8], tokenizer.pad_token_id, threads)
    found["int8_check"] = checks.check_logits(exported, quantized, tokenizer, texts, max_length,
                                              checks.INT8_TOLERANCE, "int8", "fp32's")
    staged[int8].replace(int8)
    shutil.copy(folder / "config.json", out / "config.json")
    tokenizer.save_pretrained(out)
    for where in (folder, out):  # each folder predicts at the trained length wherever it ships
        record_max_length(where, max_length)
    runtimes = {"torch": torch_runtime, "onnx": exported, "onnx-int8": quantized}
    split_texts = len(texts)
    texts, labels = checks.spread(texts, labels, max_test_texts)
    found["test"] = {**checks.accuracies(runtimes, tokenizer, max_length, texts, labels, max_int8_drop),
                     "split_texts": split_texts}
    found["sizes"] = checks.sizes(folder)
    found["seconds"] = round(time.perf_counter() - started, 1)
    checks.save(out / CHECKS, found)
    log.info("wrote %s (%.1f MB) and %s (%.1f MB): ONNX Runtime's logits within %.1e of PyTorch's; "
             "test accuracy %s", fp32, found["sizes"][RUNTIME_FILES["onnx"]] / 1e6, int8.name,
             found["sizes"][RUNTIME_FILES["onnx-int8"]] / 1e6, found["check"]["max_abs_diff"],
             ", ".join(f"{name} {acc:.4f}" for name, acc in found["test"]["accuracy"].items()))
    return found
