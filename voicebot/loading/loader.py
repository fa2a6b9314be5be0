"""Parse the YAML that ops edit into the frozen objects of ``voicebot.core.config``: the public API.

The work is split along its seams, each a module of this package:

- ``problems``: ``Problem`` and ``ConfigError`` (every problem of every file, in one pass);
- ``reader``, ``files``: the node reader (values with their file:line) and reading files;
- ``keys``: the keys each section may have; ``defaults`` + ``languages/*.yaml``: built-in
  prompts, words and voices per language, as YAML data;
- ``builder`` (one language), ``groups``, ``hours``, ``actions`` (intents and announcements),
  ``refs`` (names used before they are defined);
- ``deployment``: every language of a folder, and the rules across languages;
- ``holder``: the configuration a running server serves, reloaded safely.

Callers import from here; the importer builds on ``reader``, ``files`` and ``builder`` directly.
"""

from __future__ import annotations

from voicebot.loading.deployment import (
    default_config_path,
    load_deployment,
    load_language,
    load_language_text,
)
from voicebot.loading.holder import ConfigHolder
from voicebot.loading.keys import DEPLOYMENT_FILE
from voicebot.loading.problems import ConfigError, Problem

__all__ = [
    "DEPLOYMENT_FILE",
    "ConfigError",
    "ConfigHolder",
    "Problem",
    "default_config_path",
    "load_deployment",
    "load_language",
    "load_language_text",
]
