"""Shell completion for `trainkit <command> ...` on top of Hydra's own completion.

Hydra's bash script (`trainkit train -sc install=bash`) calls `trainkit -sc query=bash` with the
line typed so far in COMP_LINE. Hydra expects `APP overrides...`, but our line is `trainkit train
overrides...`: the subcommand word sits in between. So the first word after `trainkit` completes
to a command name, and for train/show/check the subcommand (and flags Hydra does not know) are cut
out of COMP_LINE before Hydra answers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

# Commands whose arguments are Hydra overrides.
OVERRIDE_COMMANDS = ("train", "show", "check")
# Our own flags, unknown to Hydra's argument parser.
OWN_FLAGS = ("--yaml", "--debug")


def _flag_value(args: list[str]) -> str:
    for i, a in enumerate(args):
        if a in ("-sc", "--shell-completion"):
            return args[i + 1] if i + 1 < len(args) else ""
        if a.startswith("--shell-completion="):
            return a.split("=", 1)[1]
    return ""


def query(args: list[str], commands: Sequence[str], run_hydra: Callable[[list[str]], int]) -> int:
    """Print completions for COMP_LINE (query=SHELL), or pass install/uninstall on to Hydra.

    `commands` are the CLI's command names (the first word completes to one of them).
    """
    value = _flag_value(args)
    if not value.startswith("query="):
        return run_hydra(["-sc", value] if value else ["-sc"])
    line = os.environ.get("COMP_LINE", "")
    words = line.split()
    new_word = line.endswith(" ")
    sep = "\n" if value == "query=fish" else " "
    if len(words) <= 1 or (len(words) == 2 and not new_word):
        prefix = words[1] if len(words) == 2 else ""
        print(sep.join(c for c in commands if c.startswith(prefix)))
        return 0
    cmd = words[1]
    if cmd == "ls":
        from trainkit.catalog import catalog

        prefix = "" if new_word else words[-1]
        print(sep.join(g for g in catalog() if g.startswith(prefix)))
        return 0
    if cmd not in OVERRIDE_COMMANDS:
        print("")  # empty: the shell falls back to file names (ckpt paths, run directories)
        return 0
    rest = [w for w in words[2:] if w not in OWN_FLAGS]
    hydra_args = ["-sc", value]
    for i, w in enumerate(rest):
        if w in ("--config-dir", "-cd") and i + 1 < len(rest) and os.path.isdir(rest[i + 1]):
            hydra_args += ["--config-dir", rest[i + 1]]  # complete the user's groups too
    os.environ["COMP_LINE"] = " ".join([words[0], *rest]) + (" " if new_word else "")
    return run_hydra(hydra_args)
