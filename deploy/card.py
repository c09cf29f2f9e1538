"""The ONNX section of an export's model card, from `onnx/checks.json`: `plugins.model_card` puts
it into the card at the end of a run, and `export.py onnx` puts it in place of an older one."""

import json
from pathlib import Path

from deploy.layout import CHECKS, ONNX_DIR, RUNTIME_FILES, weights_digest

BEGIN, END = "<!-- onnx -->", "<!-- /onnx -->"
NEXT = "## Training procedure"  # the card's section the ONNX one goes before
RUNTIMES = {"torch": "PyTorch", "onnx": "ONNX Runtime, fp32", "onnx-int8": "ONNX Runtime, int8"}


def section(folder: Path) -> str:
    """The section for `folder`'s card; empty where `onnx/` is missing or from other weights."""
    path = folder / ONNX_DIR / CHECKS
    if not path.is_file():
        return ""
    found = json.loads(path.read_text())
    if found["weights_sha256"] != weights_digest(folder):
        return ""
    check, test, sizes, int8 = found["check"], found["test"], found["sizes"], found["int8_check"]
    rows = "".join(f"| {RUNTIME_FILES[key]} | {runtime} | {sizes[RUNTIME_FILES[key]] / 1e6:.1f} | "
                   f"{test['accuracy'][key]:.4f} |\n" for key, runtime in RUNTIMES.items())
    over = (f" (more than the {test['max_int8_drop']:g} allowed: prefer model.onnx where they matter)"
            if test["int8_drop_points"] > test["max_int8_drop"] else "")
    return (
        f"{BEGIN}\n## ONNX\n\n"
        "`onnx/` runs this model without PyTorch, on ONNX Runtime: `model.onnx` (fp32) and "
        "`model.int8.onnx` (int8 weights, by ONNX Runtime's dynamic quantization), with the tokenizer; "
        f"texts are cut to {found['max_length']} tokens, as in training. Checked when written: ONNX "
        f"Runtime's fp32 logits are within {check['max_abs_diff']:.1e} of PyTorch's on {check['texts']} "
        f"test texts of {min(check['tokens'])} to {max(check['tokens'])} tokens (tolerance "
        f"{check['tolerance']:.0e}).\n\n"
        "| file | runtime | size (MB) | test accuracy |\n|---|---|---|---|\n" + rows +
        f"\nOn {test['texts']:,} of the {test['split_texts']:,} test texts "
        "(evenly spaced), "
        f"int8 gives PyTorch's label to {test['int8_agreement']:.1%} of them and loses "
        f"{test['int8_drop_points']:.2f} points of accuracy{over}; its logits are within "
        f"{int8['max_abs_diff']:.2f} of fp32's on the check texts (tolerance {int8['tolerance']:.2f}). The "
        "pooler and the classifier head stay fp32.\n\n"
        f"```bash\npython predict.py {folder} reviews.txt --runtime onnx-int8\n```\n{END}\n"
    )


def update_card(folder: Path) -> None:
    """The card's ONNX section replaced by the current one (or put before `NEXT`)."""
    card = folder / "README.md"
    if not card.is_file():
        return
    text, new = card.read_text(), section(folder)
    if BEGIN in text:
        text = text[:text.index(BEGIN)] + new + text[text.index(END) + len(END) + 1:]
    elif NEXT in text:
        text = text.replace(NEXT, new + "\n" + NEXT, 1)
    else:
        text += "\n" + new
    card.write_text(text)
