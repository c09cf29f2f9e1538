"""Exports of a finished run: `python export.py onnx logs/imdb/distilbert/version_0/hf_model` writes
its ONNX files (fp32 and int8), checked and measured (docs/deploy.md)."""

import logging
import os

from jsonargparse import CLI

from core.errors import exit_on_user_error
from deploy.existing_export import onnx


def main(args: list[str] | None = None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return CLI({"onnx": onnx}, args=args)


if __name__ == "__main__":
    from core.console import quiet_console

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    quiet_console()
    exit_on_user_error(main)
