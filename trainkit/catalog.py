"""`trainkit ls` and `trainkit show`: what can be chosen, and what a choice composes to.

Both answer without torch: `ls` only reads the config folders, `show` only composes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainkit.config import config_dir
from trainkit.errors import ConfigError, suggest

# Folders under configs/ that are Hydra's own settings, not choices a user makes.
HIDDEN_GROUPS = {"hydra"}


@dataclass
class Option:
    """One YAML file of a config group."""

    group: str
    name: str
    description: str
    path: Path
    user: bool = False


def describe_file(path: Path) -> str:
    """The file's one-line description: its first header comment that is not a Hydra directive."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return ""
    for line in lines:
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("#"):
            break  # the header ends at the first line of YAML
        text = stripped.lstrip("#").strip()
        if text and not text.startswith("@package"):
            return text
    return ""


def _scan(root: Path, user: bool) -> dict[str, dict[str, Option]]:
    groups: dict[str, dict[str, Option]] = {}
    if not root.is_dir():
        return groups
    for path in sorted(root.rglob("*.yaml")):
        rel = path.relative_to(root)
        if len(rel.parts) < 2 or rel.parts[0] in HIDDEN_GROUPS:
            continue  # top-level files (train.yaml) are primary configs, not options
        group = "/".join(rel.parts[:-1])
        groups.setdefault(group, {})[path.stem] = Option(group, path.stem, describe_file(path), path, user)
    return groups


def catalog(user_config_dir: str | None = None) -> dict[str, dict[str, Option]]:
    """Every group and its options: trainkit's own, then the user's (a user file wins a name clash)."""
    groups = _scan(config_dir(), user=False)
    if user_config_dir:
        for group, options in _scan(Path(user_config_dir), user=True).items():
            groups.setdefault(group, {}).update(options)
    return {g: dict(sorted(groups[g].items())) for g in sorted(groups)}


def default_choices() -> dict[str, str | None]:
    """The option train.yaml picks for each group (None for groups that are off unless chosen)."""
    from omegaconf import OmegaConf

    primary = OmegaConf.to_container(OmegaConf.load(config_dir() / "train.yaml"))
    choices: dict[str, str | None] = {}
    for entry in primary.get("defaults", []) if isinstance(primary, dict) else []:
        if isinstance(entry, dict):
            for key, value in entry.items():
                key = str(key)
                if key.startswith("override ") or key.startswith("hydra"):
                    continue
                choices[key.removeprefix("optional ")] = value
    return choices


def list_groups(group: str | None = None, user_config_dir: str | None = None) -> str:
    """The text of `trainkit ls [GROUP]`: options per group, the default marked with '*'."""
    if group is not None and group.rstrip("/=").count("=") == 1:
        return list_model_names(group.rstrip("/="))
    groups = catalog(user_config_dir)
    if group is not None:
        group = group.rstrip("/=")
        if group not in groups:
            raise ConfigError(
                f"unknown config group '{group}'{suggest(group, groups)}; groups: {', '.join(groups)}"
            )
        groups = {group: groups[group]}
    defaults = default_choices()
    lines: list[str] = []
    for name, options in groups.items():
        default = defaults.get(name)
        note = f"(default: {default})" if default else "(none by default)" if name in defaults else ""
        lines.append(f"{name}  {note}".rstrip())
        width = max(len(o) for o in options) if options else 0
        for opt in options.values():
            mark = "*" if opt.name == default else " "
            mine = "  [your config]" if opt.user else ""
            lines.append(f"  {mark} {opt.name:<{width}}  {opt.description}{mine}".rstrip())
        if name == "model":
            lines.append(f"  {MODEL_NAMES_HINT}")
        lines.append("")
    if group is None:
        lines.append(
            "pick one with GROUP=OPTION, e.g. trainkit train model=cnn optim=adam; "
            "'trainkit show GROUP=OPTION' prints what it sets"
        )
    return "\n".join(lines).rstrip() + "\n"


MODEL_NAMES_HINT = ("model=torchvision and model=timm build any model of their library by model.name; "
                    "the names: trainkit ls model=torchvision, trainkit ls model=timm")


def list_model_names(choice: str) -> str:
    """`trainkit ls model=torchvision` (or model=timm): the model names that library builds, one a line."""
    group, _, option = choice.partition("=")
    if group != "model" or option not in ("torchvision", "timm"):
        raise ConfigError(f"'trainkit ls {choice}' lists nothing; names are listed for model=torchvision and "
                          "model=timm, options of a group with: trainkit ls GROUP")
    from trainkit.models.named import model_names

    names = model_names(option)
    return "\n".join(names) + f"\n({len(names)} {option} models; pick one with model={option} model.name=NAME)\n"


# --------------------------------------------------------------------------- show


def composed(overrides: list[str], user_config_dir: str | None = None) -> tuple[Any, dict[str, str]]:
    """The run config (without Hydra's own node) and the option chosen for each group."""
    from omegaconf import OmegaConf, open_dict

    from trainkit.config import compose

    cfg = compose(overrides, user_config_dir=user_config_dir, return_hydra_config=True)
    choices = {
        str(k): str(v)
        for k, v in OmegaConf.to_container(cfg.hydra.runtime.choices).items()
        if not str(k).startswith("hydra/") and v is not None
    }
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, choices


def _plain(node: Any, key: Any) -> Any:
    """A node's value resolved when it can be, else its raw interpolation text."""
    from omegaconf import OmegaConf

    try:
        return node[key]
    except Exception:  # an interpolation that cannot resolve yet: show its text
        return OmegaConf.to_container(node, resolve=False)[key]


def config_tree(cfg: Any, choices: dict[str, str], title: str = "config") -> Any:
    """A rich Tree of the composed config: one branch per group, labelled with the chosen option."""
    from omegaconf import OmegaConf
    from rich.markup import escape
    from rich.tree import Tree

    def add(branch: Tree, node: Any) -> None:
        for key in node:
            value = _plain(node, key)
            if OmegaConf.is_dict(value):
                label = f"[bold]{escape(str(key))}[/]"
                if str(key) in choices:
                    label += f"  [cyan]{escape(choices[str(key)])}[/]"
                add(branch.add(label), value)
            else:
                if OmegaConf.is_list(value):
                    try:
                        shown = OmegaConf.to_container(value, resolve=True)
                    except Exception:
                        shown = OmegaConf.to_container(value, resolve=False)
                else:
                    shown = value
                branch.add(f"{escape(str(key))}: [green]{escape(_fmt(shown))}[/]")

    tree = Tree(f"[bold]{escape(title)}[/]")
    add(tree, cfg)
    return tree


def _fmt(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    return str(value)


def show(overrides: list[str], user_config_dir: str | None = None, as_yaml: bool = False) -> None:
    """Print the composed config (a tree, or YAML with --yaml), then validate it like a run would."""
    from omegaconf import OmegaConf
    from rich.console import Console

    from trainkit.config import validate
    from trainkit.monitor import describe as describe_monitor

    cfg, choices = composed(overrides, user_config_dir)
    if as_yaml:
        print(OmegaConf.to_yaml(cfg), end="")
    else:
        import sys

        title = "config" + (f" ({' '.join(overrides)})" if overrides else "")
        # A pipe gets no terminal width; a wide one keeps long values (transform lists) whole.
        width = None if sys.stdout.isatty() else 200
        Console(highlight=False, width=width).print(config_tree(cfg, choices, title=title))
    validate(cfg)
    if not as_yaml:  # after validate: a bad trainer.monitor_mode gets its one-line error, not a line here
        print(f"monitor: {describe_monitor(cfg, choices.get('task'))}")
