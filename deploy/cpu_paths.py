"""Which way PyTorch runs an export's model on the CPU at hand, chosen by measuring it there, never
by the CPU's vendor or flags: fp32 on MKL (PyTorch's own), fp32 with the linear layers on oneDNN
(`deploy/onednn.py`: 1.4 to 1.7x MKL on the AMD EPYC of this workplace, no gain on an Intel Xeon),
and bf16 where the CPU multiplies bf16 matrices faster than fp32 (AMX, AVX-512 BF16; about 10x
slower where it has neither, so it is not even timed there). Each path runs the same texts, the
median-length ones of the first chunk; bf16 is kept only where it gives fp32's label on each of
them and every probability within `BF16_TOLERANCE`. A path that fails (an op this build lacks) is
left out; MKL stays unless another is faster by `MARGIN`, more than timing noise."""

import copy
import logging
from collections.abc import Callable

import numpy as np
import torch

from core.bf16 import cpu_bf16_faster as bf16_pays  # names the tests replace
from core.bf16 import shortest as seconds
from core.pretrained import first_line
from deploy.onednn import onednn_linears
from deploy.streaming import softmax

log = logging.getLogger(__name__)
PLAIN = "fp32 (MKL)"
PROBE_TEXTS = 8  # texts of the first chunk's median length each path runs
MARGIN = 0.05  # how much faster than MKL another path must be to be taken
BF16_TOLERANCE = 0.01  # largest gap of any probability to fp32's for bf16 to be used


# each path's name and how its model is made from the fp32 model
PATHS = {PLAIN: lambda model: model,
         "fp32 (oneDNN linear layers)": lambda model: onednn_linears(copy.deepcopy(model)),
         "bf16": lambda model: copy.deepcopy(model).to(torch.bfloat16)}


def candidates() -> list[str]:
    """The paths worth timing here: bf16 only where the CPU computes it natively."""
    return [name for name in PATHS if name != "bf16" or bf16_pays()]



def probe_batch(ids: list[list[int]]) -> list[list[int]]:
    """`PROBE_TEXTS` texts of the median length of `ids`."""
    order = sorted(ids, key=len)
    middle = max(0, len(order) // 2 - PROBE_TEXTS // 2)
    return order[middle:middle + PROBE_TEXTS]


def agrees(probs: np.ndarray, reference: np.ndarray) -> bool:
    return bool((probs.argmax(-1) == reference.argmax(-1)).all()
                and np.abs(probs - reference).max() <= BF16_TOLERANCE)


def fastest(model: torch.nn.Module, logits: Callable[[torch.nn.Module, list[list[int]]], np.ndarray],
            ids: list[list[int]]) -> tuple[str, torch.nn.Module]:
    """(name, model) of the fastest path that gives fp32's predictions on the texts of `ids`;
    `logits(model, batch)` runs a model on a batch as the runtime does. One line says what was
    taken and why."""
    batch, timings, models, reference = probe_batch(ids), {}, {}, None
    for name in candidates():
        try:
            candidate = PATHS[name](model)
            probs = softmax(logits(candidate, batch))
            if reference is not None and not agrees(probs, reference):
                log.info("PyTorch: %s left out: its predictions differ from fp32's by more than %g",
                         name, BF16_TOLERANCE)
                continue
            timings[name] = seconds(lambda: logits(candidate, batch))
        except Exception as err:  # an op this build or CPU lacks: the path is not for this machine
            log.info("PyTorch: %s left out: %s", name, first_line(err))
            continue
        models[name], reference = candidate, probs if reference is None else reference
    if PLAIN not in timings:
        raise RuntimeError("PyTorch's own fp32 model failed on the probe batch")
    best = min(timings, key=timings.get)
    if timings[best] > (1 - MARGIN) * timings[PLAIN]:
        best = PLAIN
    measured = ", ".join(f"{name} {1000 * t:.0f} ms" for name, t in timings.items())
    log.info("PyTorch runs %s on this CPU: the fastest on %d texts of %d tokens (%s)", best,
             len(batch), max(map(len, batch)), measured)
    return best, models[best]
