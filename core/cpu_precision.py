"""The precision a run on the CPU trains in where its config asks for 16-bit mixed precision:
bf16-mixed only where this CPU steps this model, at this text length, faster in it than in fp32.
A CPU flag is not enough: oneDNN reports bf16 on CPUs that emulate it several times slower, and
even on an Intel Xeon with AMX, bf16 sped MiniLM up at 512 tokens and slowed it down at 128
(issue 35). So it is measured: first a matrix product (`core.bf16`; where bf16 loses there, the
answer is fp32 at once), then a forward and backward pass of a two-layer copy of the backbone's
architecture (random weights) over 4 texts of the run's length, in each precision. The answer is
cached per CPU, thread count, torch version, architecture and length, so later runs decide at once."""

import hashlib
import json
import os
import platform
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, PretrainedConfig

from core.bf16 import cpu_bf16_faster, shortest
from core.pretrained import from_pretrained

CACHE = Path(".cache") / "cpu_precision.json"
PROBE_LAYERS, PROBE_TEXTS = 2, 4


def cpu_name() -> str:
    """The CPU's model name, as lscpu gives it."""
    info = Path("/proc/cpuinfo")
    for line in info.read_text().splitlines() if info.is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def probe_config(backbone: str, trust_remote_code: bool) -> PretrainedConfig:
    """The backbone's architecture, cut to `PROBE_LAYERS` layers: the time of a layer is what differs."""
    config = from_pretrained(AutoConfig, backbone, "backbone config", trust_remote_code=trust_remote_code)
    config.num_hidden_layers = min(PROBE_LAYERS, config.num_hidden_layers)
    return config


def step_seconds(model: torch.nn.Module, ids: torch.Tensor, bf16: bool) -> float:
    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(input_ids=ids).logits
        logits.float().sum().backward()
    return shortest(step, 2)


def measure(config: PretrainedConfig, length: int) -> dict:
    """Seconds of a forward and backward pass in fp32 and in bf16 autocast; the run's random
    streams are left as they were (the run is seeded before this runs)."""
    with torch.random.fork_rng(devices=[]):
        model = AutoModelForSequenceClassification.from_config(config).train()
        ids = torch.randint(config.vocab_size, (PROBE_TEXTS, length))
        return {"fp32_s": step_seconds(model, ids, False), "bf16_s": step_seconds(model, ids, True)}


def probe_key(config: PretrainedConfig, length: int) -> str:
    shape = {k: v for k, v in config.to_dict().items() if k not in ("_name_or_path", "transformers_version")}
    what = {"cpu": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "config": shape, "length": length}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cpu_precision(backbone: str, length: int, trust_remote_code: bool = False, cache: Path | None = None
                  ) -> tuple[str, str]:
    """('bf16-mixed' or '32-true', the reason in words) for training `backbone` at `length` tokens."""
    cache = cache or CACHE
    if not cpu_bf16_faster():
        return "32-true", "this CPU multiplies bf16 matrices slower than fp32 ones, measured"
    config = probe_config(backbone, trust_remote_code)
    key = probe_key(config, length)
    known = json.loads(cache.read_text()) if cache.is_file() else {}
    cached = key in known
    if not cached:
        known[key] = measure(config, length)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known, indent=1))
        os.replace(tmp, cache)
    found = known[key]
    return ("bf16-mixed" if found["bf16_s"] < found["fp32_s"] else "32-true",
            f"a training step of this architecture at {length} tokens took {1000 * found['bf16_s']:.0f} ms "
            f"in bf16 and {1000 * found['fp32_s']:.0f} ms in fp32 on this CPU, "
            + (f"measured earlier ({cache})" if cached else "measured now"))
