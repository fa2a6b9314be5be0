"""Load a deployment: every language folder of a config folder, one language, or YAML text.

The cross-language rules live here: a phone number answers in one language only, no group
dials one of the robot's own lines, and ``deployment.yaml`` names an existing default language.
``default_config_path`` finds the example deployment built into the package.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

from voicebot.core.config import Deployment, DestinationKind, LanguageConfig, Origin
from voicebot.loading.builder import Builder
from voicebot.loading.files import (
    Entry,
    add_entries,
    collect_language,
    compose_yaml,
    display_path,
    read_yaml,
    yaml_files,
)
from voicebot.loading.keys import DEPLOYMENT_FILE, DEPLOYMENT_KEYS, TOP_KEYS
from voicebot.loading.problems import ConfigError, Problem, place
from voicebot.loading.reader import Reader, did_you_mean

__all__ = ["default_config_path", "load_deployment", "load_language", "load_language_text"]


def load_language(path: Path) -> LanguageConfig:
    """Load one language from a YAML file or a folder whose YAML files are merged."""
    problems: list[Problem] = []
    config = _load_language(Path(path), problems)
    if config is not None:
        _check_numbers([config], problems)
    if config is None or problems:
        raise ConfigError(problems)
    return config


def load_language_text(text: str, name: str = "<text>") -> LanguageConfig:
    """Load one language from YAML text; ``name`` stands for the file in problems."""
    problems: list[Problem] = []
    entries: dict[str, Entry] = {}
    node = compose_yaml(text, name, problems)
    if node is not None:
        add_entries(Reader(name, problems), node, TOP_KEYS, entries)
    config = Builder(problems).build(entries, name, Origin(name, 1, 1), None) if entries else None
    if config is not None:
        _check_numbers([config], problems)
    if config is None or problems:
        if not problems:
            problems.append(Problem(Origin(name, 1, 1), "the text is empty"))
        raise ConfigError(problems)
    return config


def _load_language(path: Path, problems: list[Problem]) -> LanguageConfig | None:
    entries, display, whole = collect_language(path, problems)
    if not entries and problems:
        return None
    folder_language = path.name if path.is_dir() else None
    return Builder(problems).build(entries, display, whole, folder_language)


def load_deployment(path: Path | None = None) -> Deployment:
    """Load every language of a deployment folder, one language folder, or one file."""
    path = default_config_path() if path is None else Path(path)
    problems: list[Problem] = []
    languages: dict[str, LanguageConfig] = {}
    default: str | None = None
    if path.is_dir() and _is_deployment_folder(path):
        display = display_path(path)
        folders = sorted(
            p for p in path.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
        )
        for folder in folders:
            if not yaml_files(folder):
                continue
            config = _load_language(folder, problems)
            if config is None:
                continue
            if config.language in languages:
                problems.append(
                    Problem(
                        Origin(display_path(folder), 0, 0),
                        f"language {config.language} is also defined in "
                        f"{languages[config.language].source}",
                    )
                )
                continue
            languages[config.language] = config
        for stray in yaml_files(path):
            if stray.name != DEPLOYMENT_FILE:
                problems.append(
                    Problem(
                        Origin(display_path(stray), 0, 0),
                        "this file is outside any language folder and is not read; move it into "
                        "a folder such as en-US/",
                    )
                )
        default = _deployment_default(path / DEPLOYMENT_FILE, languages, problems)
        _check_numbers(languages.values(), problems)
        if not languages and not problems:
            problems.append(Problem(Origin(display, 0, 0), "no language folders found"))
    else:
        config = _load_language(path, problems)
        if config is not None:
            languages[config.language] = config
            _check_numbers([config], problems)
    if problems or not languages:
        raise ConfigError(problems)
    if default is None:
        default = "en-US" if "en-US" in languages else sorted(languages)[0]
    return Deployment(languages=MappingProxyType(languages), default_language=default)


def _check_numbers(languages: Iterable[LanguageConfig], problems: list[Problem]) -> None:
    """A called number picks the call's language, so it may answer in one language only; and a
    group dialling one of the robot's own lines would hand its callers back to the robot."""
    languages = list(languages)
    owner: dict[str, tuple[str, Origin]] = {}
    for config in languages:
        for number, origin in zip(config.numbers, config.number_origins, strict=True):
            if number in owner:
                language, first = owner[number]
                problems.append(
                    Problem(
                        origin,
                        f"numbers: {number} already answers in {language} ({place(first)}); a "
                        "number can answer in one language only",
                    )
                )
            else:
                owner[number] = (config.language, origin)
    for config in languages:
        for group in config.groups.values():
            dest = group.destination
            if dest.kind is DestinationKind.NUMBER and dest.value in owner:
                language, line = owner[dest.value]
                problems.append(
                    Problem(
                        group.origin,
                        f"group '{group.id}': {dest.value} is a line this voicebot answers in "
                        f"{language} ({place(line)}); callers put through to it would reach the "
                        "robot again. Give the agents' own number or queue",
                    )
                )


def _is_deployment_folder(path: Path) -> bool:
    return any(
        p.is_dir() and not p.name.startswith((".", "_")) and yaml_files(p) for p in path.iterdir()
    )


def _deployment_default(
    file: Path, languages: Mapping[str, LanguageConfig], problems: list[Problem]
) -> str | None:
    if not file.is_file():
        return None
    display = display_path(file)
    node = read_yaml(file, display, problems)
    if node is None:
        return None
    ctx = Reader(display, problems)
    pairs = ctx.mapping(node, "", "the file", DEPLOYMENT_KEYS)
    if not pairs or "default_language" not in pairs:
        return None
    vnode = pairs["default_language"][1]
    code = ctx.text(vnode, "", "'default_language'")
    if code is None:
        return None
    if code not in languages:
        if languages:
            ctx.fail(
                vnode,
                f"default_language {code} has no language folder"
                f"{did_you_mean(code, list(languages), noun='languages')}",
            )
        return None
    return code


def _has_language_folders(path: Path) -> bool:
    try:
        return path.is_dir() and _is_deployment_folder(path)
    except OSError:
        return False


def default_config_path() -> Path:
    """The embedded example deployment: the installed ``voicebot.defaults`` or the repo's."""
    try:
        root = Path(str(importlib.resources.files("voicebot.defaults")))
        if _has_language_folders(root):
            return root
    except (ModuleNotFoundError, TypeError, ValueError):
        pass
    # A package without __init__.py resolves to a multiplexed path; ask its import spec instead.
    try:
        spec = importlib.util.find_spec("voicebot.defaults")
    except (ModuleNotFoundError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        if _has_language_folders(Path(location)):
            return Path(location)
    return Path(__file__).resolve().parents[2] / "grammars"
