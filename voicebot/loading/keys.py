"""The keys each section of the YAML may have: one list the loader, the importer and the docs
test all read, so a new key is added in one place."""

from __future__ import annotations

import re
from dataclasses import MISSING, fields

from voicebot.core.config import (
    ActionKind,
    DestinationKind,
    Overflow,
    Prompts,
    SpeechSettings,
    Thresholds,
    Words,
)

TOP_KEYS = (
    "language",
    "voice",
    "timezone",
    "max_turns",
    "numbers",
    "prompts",
    "recordings",
    "words",
    "thresholds",
    "speech",
    "recall",
    "default_group",
    "groups",
    "announcements",
    "intents",
    "overflow",
)
REQUIRED_TOP = ("groups", "default_group", "intents")
DESTINATION_KEYS = tuple(k.value for k in DestinationKind)
GROUP_KEYS = ("name", *DESTINATION_KEYS, "hours", "when_closed")
WHEN_CLOSED_KEYS = ("say", "say_without_sms", "sms", "transfer_to")
ACTION_KEYS = tuple(k.value for k in ActionKind)
INTENT_KEYS = ("label", "phrases", "examples", *ACTION_KEYS)
ANNOUNCE_KEYS = ("text", "audio_url")
SMS_KEYS = ("link", "say", "text", "fallback", "answer", "group")
OVERFLOW_KEYS = tuple(Overflow.__dataclass_fields__)
LOOKUP_KEYS = ("url", "otherwise", "timeout_s")
RECALL_KEYS = ("days",)
ANNOUNCEMENT_KEYS = ("id", "text", "audio_url", "from", "until", "after_intents")
THRESHOLD_KEYS = tuple(Thresholds.__dataclass_fields__)
SPEECH_KEYS = tuple(SpeechSettings.__dataclass_fields__)
DEPLOYMENT_KEYS = ("default_language",)
HOURS_EXTRA_KEYS = ("timezone", "closed_days")

DEPLOYMENT_FILE = "deployment.yaml"
YAML_SUFFIXES = (".yaml", ".yml")

# Ids ops choose (groups, intents): they appear in logs, URLs and the importer's output.
NAME_RE = re.compile(r"^[\w.-]+$")

PROMPT_KEYS = tuple(Prompts.__dataclass_fields__)
WORD_KEYS = tuple(Words.__dataclass_fields__)
# The word lists a language without built-in ones must give (the others have defaults).
REQUIRED_WORD_KEYS = tuple(f.name for f in fields(Words) if f.default is MISSING)
