"""Config files named on a command line, refused in one line when they are YAML but no mapping:
jsonargparse says only 'Unexpected config' (train.py) or echoes the content (sweep.py)."""

from pathlib import Path

import yaml

from core.errors import UserError


def config_paths(args: list[str]) -> list[str]:
    paths = [value for flag, value in zip(args, args[1:]) if flag in ("--config", "-c")]
    return [*paths, *(arg.split("=", 1)[1] for arg in args if arg.startswith("--config="))]


def check_mappings(args: list[str], what: str, expected: str) -> None:
    """Each `--config` file of `args` that is YAML but a list, a bare value or nothing is refused,
    naming it as `what` and saying what it must hold (`expected`, after 'holds a list, '). A
    missing or broken file is left to jsonargparse, whose message says where it breaks."""
    for path in config_paths(args):
        try:
            content = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError, yaml.YAMLError):
            continue
        if not isinstance(content, dict):
            holds = ("a list" if isinstance(content, list) else "nothing" if content is None
                     else f"only {content!r}")
            raise UserError(f"{what} {path} holds {holds}, {expected}")
