"""The runtimes an export runs on, each turning a batch of token ids into logits: PyTorch on the
`hf_model/` weights, and ONNX Runtime on `onnx/model.onnx` or `onnx/model.int8.onnx` (the batch
padded to its longest text: the exported graph takes padded batches). PyTorch packs a batch into
one row without padding, as in training, where the model takes packed batches and padding would
be more than `PACK_ABOVE` of the batch's tokens; a batch of texts sorted by length seldom is, and
there packing only adds steps (on the 2-core CPU, 512-token IMDB reviews in sorted batches of 32:
7.5 to 8.1 texts/s packed, 7.7 to 8.0 padded, one thread, with MKL's linear layers).

Uncompiled on the CPU, PyTorch runs the path a probe on the first texts finds fastest there (MKL,
oneDNN's linear layers or bf16: `deploy/cpu_paths.py`). Compiled, it runs the padded batches
through `torch.compile` with frozen weights: inductor prepacks them for its matrix products and
fuses the steps between them. On the 2-core AMD EPYC (MiniLM, 32 texts of 300 tokens) a batch took
0.72 to 0.83 s instead of the oneDNN model's 0.98 s, logits within 4e-7; one graph serves every
batch shape."""

import importlib
import logging
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from core.errors import UserError
from core.pretrained import first_line
from deploy.layout import EXTRA
from deploy.threads import cpu_threads

log = logging.getLogger(__name__)
RUNTIMES = ("torch", "onnx", "onnx-int8")
CPU = ["CPUExecutionProvider"]
CUDA = ["CUDAExecutionProvider", *CPU]
UNFUSED = ["SkipLayerNormFusion"]  # ONNX Runtime's graph rewrites left out (OrtRuntime)
PACK_ABOVE = 0.1  # share of a padded batch's tokens that are padding, above which PyTorch packs


def require(modules: tuple[str, ...], purpose: str) -> None:
    """One line naming the extra to install where an optional dependency is missing."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            raise UserError(f"{purpose} needs {module}, which is not installed: {EXTRA}") from None


def padded(batch: list[list[int]], pad_token_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(input ids, attention mask), int64 arrays of [texts, longest text]."""
    ids = np.full((len(batch), max(map(len, batch))), pad_token_id, dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, text in enumerate(batch):
        ids[row, :len(text)] = text
        mask[row, :len(text)] = 1
    return ids, mask


@contextmanager
def compile_settings():
    """What the compiled model runs under, read when it compiles, at a call: frozen weights (which
    torch.compile's options do not set), and a size of its own for each dimension, where torch would
    give a square first batch (as many texts as tokens) one size and compile again for the next."""
    import torch
    import torch.fx.experimental._config as shapes

    with torch._inductor.config.patch(freezing=True), shapes.patch(use_duck_shape=False):
        yield


class TorchRuntime:
    """The PyTorch model of an export folder, in eval mode, on `device` (None: the GPU where there is
    one); `threads` sets PyTorch's CPU threads (for the whole process; None leaves them); `compile`
    runs it through `torch.compile` (padded batches only). Uncompiled on the CPU, the way it runs
    (MKL, oneDNN, bf16) is measured on the first texts it gets (`prepare`, deploy/cpu_paths.py),
    unless `path` names one (a resumed prediction goes on as it began; the export's checks compare
    with PyTorch's own fp32)."""

    def __init__(self, folder: Path, pad_token_id: int, max_length: int, threads: int | None = None,
                 compile: bool = False, device: str | None = None, path: str | None = None):
        import torch
        from transformers import AutoModelForSequenceClassification

        from core.pretrained import from_pretrained
        from datamodules.packing import PackedCollator
        from deploy.cpu_paths import PATHS
        from lightning_modules.packing import use_varlen_attention

        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model = from_pretrained(AutoModelForSequenceClassification, str(folder), "model")
        self.model = model.eval().to(self.device)
        # None until `prepare` measured the CPU's paths
        self.path = ("compiled" if compile else self.device.type if self.device.type != "cpu"
                     else path if path in PATHS else None)
        if self.path in PATHS:
            self.model = PATHS[self.path](self.model)
        self.takes_packed = not compile and use_varlen_attention(self.model)
        self.forward = torch.compile(self.model, dynamic=True) if compile else self.model
        self.pad_token_id = pad_token_id
        self.collate = PackedCollator(pad_token_id, max_length)

    def prepare(self, ids: list[list[int]]) -> None:
        """On the CPU, uncompiled: the fastest path that predicts as fp32 does, timed once on
        texts of the median length of `ids` (the first texts to predict)."""
        if self.path is None:
            from deploy.cpu_paths import fastest

            self.path, self.model = fastest(self.model, self.run, ids)
            self.forward = self.model

    def logits(self, batch: list[list[int]]) -> np.ndarray:
        return self.run(self.model, batch)

    def run(self, model, batch: list[list[int]]) -> np.ndarray:
        """`model`'s logits on a batch of token ids (`self.forward` where it is compiled)."""
        import torch

        from core.batches import model_inputs
        from lightning_modules.heads import first_token_outputs

        with torch.inference_mode():
            lengths = [len(ids) for ids in batch]
            if self.takes_packed and 1 - sum(lengths) / (len(batch) * max(lengths)) > PACK_ABOVE:
                rows = self.collate([{"input_ids": ids, "labels": 0} for ids in batch])
                inputs = {k: v.to(self.device) if torch.is_tensor(v) else v
                          for k, v in model_inputs(rows, with_labels=False).items()}
                with first_token_outputs(model, inputs["cu_seq_lens_q"], len(batch)):
                    out = model(**inputs).logits
            else:
                # a compiled model would compile a graph of its own for a batch of 1: it gets 2 rows
                one = self.compiled and len(batch) == 1
                ids, mask = (torch.from_numpy(a).to(self.device)
                             for a in padded(batch * 2 if one else batch, self.pad_token_id))
                out = self.padded_logits(model, ids, mask)[:len(batch)]
        return out.float().cpu().numpy()

    def padded_logits(self, model, ids, mask):
        """The model's logits; where compiling fails (no C++ compiler, say), one warning and eager."""
        if not self.compiled:
            return model(input_ids=ids, attention_mask=mask).logits
        try:
            with compile_settings():
                return self.forward(input_ids=ids, attention_mask=mask).logits
        except Exception as err:  # inductor's errors have no common type; eager runs the same batch
            log.warning("torch.compile failed, so the model runs uncompiled: %s", first_line(err))
            from deploy.cpu_paths import PLAIN

            self.forward, self.path = self.model, PLAIN
            return self.model(input_ids=ids, attention_mask=mask).logits

    @property
    def compiled(self) -> bool:
        return self.forward is not self.model


class OrtRuntime:
    """An ONNX file in an ONNX Runtime session on the CPU (or CUDA), `threads` threads per operator
    (None: `deploy.threads.cpu_threads`, so OMP_NUM_THREADS too, which ONNX Runtime ignores). The
    session leaves each residual Add and LayerNorm as they are: fused into ONNX Runtime's
    SkipLayerNormalization they took a quarter of the int8 model's time, and on the 2-core AMD EPYC
    (MiniLM, 32 texts of 50 and 300 tokens, 1 and 2 threads) batches ran 1.20 to 1.35x faster
    unfused in int8 and 1.09 to 1.19x in fp32, fp32 logits within 1e-6 of the fused ones."""

    def __init__(self, path: Path, pad_token_id: int, threads: int | None, device: str = "cpu"):
        require(("onnxruntime",), "--runtime onnx")
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = cpu_threads(threads)
        options.inter_op_num_threads = 1
        providers = CPU
        if device == "cuda":
            if CUDA[0] not in onnxruntime.get_available_providers():
                raise UserError("--device cuda: this ONNX Runtime has no CUDAExecutionProvider (pip "
                                "install onnxruntime-gpu), or use --runtime torch")
            providers = CUDA
        self.path = device
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=providers,
                                                        disabled_optimizers=UNFUSED)
        except Exception as err:  # onnxruntime's own error types: the file is no model it can run
            raise UserError(f"ONNX Runtime cannot load {path}: {first_line(err)}") from None
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.pad_token_id = pad_token_id

    def logits(self, batch: list[list[int]]) -> np.ndarray:
        ids, mask = padded(batch, self.pad_token_id)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return self.session.run(["logits"], {name: feed[name] for name in self.inputs})[0]
