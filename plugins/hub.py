"""Publishing an export to the Hugging Face hub: checked before training, pushed after it."""

import logging
from pathlib import Path
from typing import Optional

from huggingface_hub import HfApi
from huggingface_hub import constants as hub_constants

from core.errors import UserError
from core.pretrained import first_line, hub_reachable

log = logging.getLogger(__name__)


def add_hub_options(parser) -> None:
    """`--push_to_hub` and `--hub_private`, options of the CLI beside the Trainer's."""
    parser.add_argument("--push_to_hub", type=Optional[str], default=None,
                        help="after fit, upload the export (hf_model/, with its model card) to this hub "
                             "repo id, and a LoRA run's adapter/ to <repo id>-adapter; checked before "
                             "training")
    parser.add_argument("--hub_private", type=bool, default=True,
                        help="make the --push_to_hub repository private")


def check_hub_push(repo_id: str) -> None:
    """Fails in one line before any training when the push could not happen after it."""
    if not hub_reachable():
        why = "HF_HUB_OFFLINE is set" if hub_constants.HF_HUB_OFFLINE else "the hub does not answer"
        raise UserError(f"--push_to_hub {repo_id}: cannot reach the Hugging Face hub ({why}); train "
                        "without it and push the export later: hf upload <repo> <run>/hf_model")
    try:
        HfApi().whoami()
    except Exception as err:  # no token, a bad token, a network error: huggingface_hub's own words
        raise UserError(f"--push_to_hub {repo_id}: the hub refuses this machine ({first_line(err)}); "
                        "log in with `hf auth login` first") from None


def push_export(repo_id: str, private: bool, export_dirs: list[Path]) -> list[str]:
    """`hf_model/` to `repo_id`, a LoRA run's `adapter/` to `<repo_id>-adapter`; their URLs."""
    api, urls = HfApi(), []
    for folder in export_dirs:
        repo = repo_id if folder.name == "hf_model" else f"{repo_id}-{folder.name}"
        api.create_repo(repo, private=private, exist_ok=True)
        api.upload_folder(repo_id=repo, folder_path=folder, commit_message="Upload from bert-lightning")
        urls.append(f"{hub_constants.ENDPOINT}/{repo}")
        log.info("pushed %s to %s", folder, urls[-1])
    return urls
