"""Predict every text of a file with an exported model, streaming, on PyTorch or ONNX Runtime:
`python predict.py logs/imdb/distilbert/version_0/hf_model reviews.txt --runtime onnx-int8`."""

import logging
import os
import signal

from jsonargparse import CLI

from core.errors import exit_on_user_error
from deploy.prediction import Stopped, predict


def stop_on_sigterm(signum, frame) -> None:
    """SIGTERM stops between two writes, as Ctrl-C does, so the output ends with a whole row."""
    raise Stopped(143)


def main(args: list[str] | None = None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    return CLI(predict, args=args)


if __name__ == "__main__":
    from core.console import quiet_console

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    quiet_console()
    exit_on_user_error(main)
