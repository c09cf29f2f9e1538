"""Every `train.py` command that README.md and docs/*.md show parses as written: its config files
exist, and every option is one train.py knows, with a value of the right type (mktestdocs reads
the fenced blocks). Nothing runs and nothing loads: paths that an earlier documented run writes
(`logs/...`) are only read when the command runs, so they need not exist here."""

import re
import shlex

import pytest
from mktestdocs import grab_code_blocks

import train
from core import cpu_precision
from sweeps.checks import ParseOnly
from tests.helpers import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SUBCOMMANDS = ("fit", "validate", "test", "predict")
# commands whose config file an earlier documented command writes, with the command that writes it
WRITTEN_BEFORE = {"logs/sweeps/imdb-minilm-cpu/best.yaml":
                  "sweep.py --config configs/sweeps/imdb-minilm-cpu.yaml"}


def shell_commands(block: str) -> list[str]:
    """The commands of a bash block: continued lines joined, comments dropped, split at && and ;,
    and the block's `NAME=value` lines substituted into the commands after them."""
    names, commands = {}, []
    for line in re.sub(r"\\\n\s*", " ", block).splitlines():
        line = re.sub(r"(^|\s)#.*", "", line).strip()
        for command in filter(None, (c.strip() for c in re.split(r"&&|;", line))):
            assignment = re.fullmatch(r'(\w+)=("[^"]*"|\S*)', command)  # not VAR=1 python ...
            if assignment:
                names[assignment[1]] = assignment[2].strip('"')
            else:
                commands.append(re.sub(r"\$(\w+)", lambda m: names.get(m[1], m[0]), command))
    return commands


def train_commands() -> list[tuple[str, list[str]]]:
    """(where, the arguments after train.py) of every documented train.py command."""
    found = []
    for doc in DOCS:
        for block in grab_code_blocks(doc.read_text(), lang="bash"):
            for command in shell_commands(block):
                words = shlex.split(command)
                if "train.py" in words:
                    where = f"{doc.relative_to(ROOT)}: {command[:90]}"
                    found.append((where, words[words.index("train.py") + 1:]))
    return found


COMMANDS = train_commands()


class Parsed(ParseOnly):
    """A command line parsed and checked as train.py would run it, its subcommand included, with
    nothing built or run."""

    def _run_subcommand(self, subcommand: str) -> None:
        """Nothing runs."""


def test_the_docs_show_train_py_commands_of_every_subcommand():
    assert len(COMMANDS) > 30 and {args[0] for _, args in COMMANDS} == {"fit", "test", "predict"}


@pytest.mark.parametrize("args", [args for _, args in COMMANDS], ids=[where for where, _ in COMMANDS])
def test_a_documented_train_py_command_parses_as_written(args, monkeypatch):
    monkeypatch.setattr(cpu_precision, "cpu_bf16_faster", lambda: False)  # no backbone loads
    monkeypatch.setattr(train, "resolve_ckpt_path", lambda config, subcommand: None)  # a run's file
    monkeypatch.setattr(train, "check_hub_push", lambda repo: None)  # the network
    monkeypatch.chdir(ROOT)
    written = [path for path in WRITTEN_BEFORE if path in args]
    if written:
        pytest.skip(f"{written[0]} is written by `{WRITTEN_BEFORE[written[0]]}`, documented before it")
    assert args[0] in SUBCOMMANDS, args
    Parsed(subclass_mode_model=True, subclass_mode_data=True, auto_configure_optimizers=False, run=True,
           parser_kwargs={sub: {"default_config_files": [str(train.DEFAULTS)], "exit_on_error": False}
                          for sub in SUBCOMMANDS},
           args=[arg for arg in args if arg != "--print_config"])
