"""Typed, validated configuration objects.

The YAML that ops edit is parsed once (see ``voicebot.loading.loader``) into these frozen objects;
every
other module receives them and never touches YAML. Each object remembers where it came from
(``Origin``) so later checks and runtime errors can still point at a file and line.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo

from voicebot.core.phone import line_calling_code
from voicebot.core.text import says_phrase


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a value was written: 1-based line and column."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


UNKNOWN_ORIGIN = Origin("<built-in>", 0, 0)


class DestinationKind(StrEnum):
    NUMBER = "number"  # E.164 phone number, dialled with <Dial><Number>
    SIP = "sip"  # SIP URI, dialled with <Dial><Sip>
    QUEUE = "queue"  # Twilio queue name, <Enqueue>
    WORKFLOW = "workflow"  # TaskRouter workflow SID, <Enqueue workflowSid=...>


@dataclass(frozen=True, slots=True)
class Destination:
    kind: DestinationKind
    value: str

    def __str__(self) -> str:
        if self.kind is DestinationKind.SIP and self.value.lower().startswith(("sip:", "sips:")):
            return self.value  # a SIP URI names its scheme already (not sip:sip:...)
        return f"{self.kind.value}:{self.value}"


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class TimeRange:
    start: dt.time
    end: dt.time  # exclusive; dt.time.max means "until midnight"

    def contains(self, t: dt.time) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True, slots=True)
class OpeningHours:
    """Weekly hours in a time zone, with closed days; no hours at all means always open."""

    timezone: str = "UTC"
    weekly: Mapping[str, tuple[TimeRange, ...]] = field(default_factory=dict)
    closed_days: frozenset[dt.date] = frozenset()
    always_open: bool = True

    def is_open(self, at: dt.datetime) -> bool:
        if self.always_open:
            return True
        local = _as_aware(at).astimezone(ZoneInfo(self.timezone))
        if local.date() in self.closed_days:
            return False
        ranges = self.weekly.get(WEEKDAYS[local.weekday()], ())
        return any(r.contains(local.time()) for r in ranges)


@dataclass(frozen=True, slots=True)
class WhenClosed:
    """What a caller routed to a closed group gets instead of a transfer."""

    say: str
    sms: str | None = None  # optional text (e.g. a link) sent to the caller
    # said instead of ``say`` to a caller whose number cannot take ``sms`` (withheld, landline),
    # so nobody is promised a text that cannot arrive
    say_without_sms: str | None = None
    transfer_to: str | None = None  # another group id to try instead, e.g. an overflow line


@dataclass(frozen=True, slots=True)
class AgentGroup:
    id: str
    name: str  # spoken: "I'll put you through to {name}"
    destination: Destination
    hours: OpeningHours = OpeningHours()
    when_closed: WhenClosed | None = None
    origin: Origin = UNKNOWN_ORIGIN

    def is_open(self, at: dt.datetime) -> bool:
        return self.hours.is_open(at)


@dataclass(frozen=True, slots=True)
class Announcement:
    id: str
    text: str | None  # spoken with <Say>; either text or audio_url (or both: audio wins)
    audio_url: str | None
    start: dt.date | None  # first day it is active (inclusive), in the language's time zone
    end: dt.date | None  # last day it is active (inclusive)
    after_intents: tuple[str, ...] = ()  # empty: played to every caller after the greeting
    origin: Origin = UNKNOWN_ORIGIN

    def is_active(self, on: dt.date) -> bool:
        if self.start is not None and on < self.start:
            return False
        return not (self.end is not None and on > self.end)


class ActionKind(StrEnum):
    ANNOUNCE = "announce"
    SMS = "sms"
    TRANSFER = "transfer"
    LOOKUP = "lookup"  # ask the organisation's own system (see ``voicebot.core.lookup``)


class SmsFallback(StrEnum):
    READ = "read"  # read the answer aloud instead
    TRANSFER = "transfer"  # transfer to the intent's fallback group (or the default group)


@dataclass(frozen=True, slots=True)
class IntentAction:
    kind: ActionKind
    # announce: what is said (or played) before "anything else?"
    text: str | None = None
    audio_url: str | None = None
    # sms: the chatbot answer's link, the SMS body and what the bot says when it was sent
    link: str | None = None
    sms_text: str | None = None  # body; "{link}" is replaced; default: ``default_sms_text``
    fallback: SmsFallback = SmsFallback.TRANSFER
    answer: str | None = None  # read aloud when fallback is "read"
    # transfer (and sms fallback): the agent group id; lookup: the ``otherwise`` group
    group: str | None = None
    # lookup: the endpoint POSTed to, and how long the caller waits for it at most
    url: str | None = None
    timeout_s: float = 2.0


def default_sms_text(said: str) -> str:
    """The SMS body of an intent that gives none: what the bot says about the text (its ``say``,
    else the ``sms_sent`` prompt), then the link."""
    return f"{said} {{link}}"


@dataclass(frozen=True, slots=True)
class PhraseSlot:
    """Where one more phrase can be written by hand into an intent's source file (the
    dashboard's snippet), from the layout of its YAML when it was read. Pasting below the
    first line of the last phrase, as the snippet once did, changed that phrase when it spanned
    two lines; a flow list (``[a, b]``) takes no ``- phrase`` line at all.

    kind "block": paste ``- phrase`` below ``line`` (the last line of the last phrase), its
    '-' at ``column``; "flow": insert ``, phrase`` (``phrase`` when ``empty``) at ``line``,
    ``column``, where the list's ']' is; "key": the intent has no phrases: paste ``phrases:``
    and the phrase below ``line`` (the intent's name), the key at ``column``. Columns are
    1-based."""

    kind: Literal["block", "flow", "key"]
    line: int
    column: int
    empty: bool = False


@dataclass(frozen=True, slots=True)
class Intent:
    name: str
    label: str  # how the bot names it in "is it about A or B?"
    phrases: tuple[str, ...]  # written by ops
    examples: tuple[str, ...]  # imported from labelled history
    action: IntentAction
    origin: Origin = UNKNOWN_ORIGIN
    # where each phrase / example was written (same order), so checks can point at the line
    phrase_origins: tuple[Origin, ...] = ()
    example_origins: tuple[Origin, ...] = ()
    label_given: bool = True  # False when the YAML had no label and it was made from the name
    # where a phrase can be added by hand; None when its phrases are not written in this
    # intent alone (an alias or merge shares them) or the YAML came from no file
    phrase_slot: PhraseSlot | None = None

    @property
    def route(self) -> str:
        """Where the intent sends the caller: intents with the same route end the same way for
        the caller (the same group, the same link), so choosing between them changes nothing."""
        action = self.action
        if action.kind is ActionKind.TRANSFER:
            return f"group:{action.group}"
        if action.kind is ActionKind.SMS:
            return f"sms:{action.link}"
        return f"announce:{self.name}"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Matcher score cut-offs, all on the matcher's 0..1 confidence scale.

    accept: top score at or above this (and clear of the runner-up) routes at once.
    clarify_margin: when the top two are within this margin, ask "A or B?".
    reject: below this the utterance counts as not understood.
    """

    accept: float = 0.5
    clarify_margin: float = 0.1
    reject: float = 0.3


@dataclass(frozen=True, slots=True)
class Prompts:
    greeting: str
    reprompt: str  # after silence
    no_match: str  # after speech that matched nothing; "{hints}" lists example topics
    clarify: str  # "{a}" and "{b}" are intent labels
    anything_else: str
    transfer: str  # "{group}" is the group's name
    sms_sent: str  # default said after an SMS when the intent gives no text
    sms_failed: str  # said before the fallback when an SMS cannot be sent
    goodbye: str
    error: str  # said when the bot fails internally, before the transfer
    # Needed only by what uses them (the loader asks for them then): the filler while a
    # lookup runs, and the question to a recalled caller ("{label}": the last call's intent).
    lookup_wait: str = ""
    recall: str = ""


@dataclass(frozen=True, slots=True)
class Words:
    """Word lists the dialogue understands outside the intents."""

    # "agent", "kan jag få prata med någon", ... → transfer to the default group at once;
    # matched loosely (``asks_for_person``)
    escape: tuple[str, ...]
    yes: tuple[str, ...]
    no: tuple[str, ...]
    # Answers to "is it about A or B?" that pick by position ("the first one", "the latter"),
    # and the words ignored when an answer is matched against the two labels ("the", "my").
    # Optional: without them an answer can still name a label.
    first: tuple[str, ...] = ()
    second: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    # Inflection endings an escape word may carry ("n", "en": "människan", "handläggaren").
    endings: tuple[str, ...] = ()

    def asks_for_person(self, text: str) -> bool:
        """Whether ``text`` holds one of the escape phrases (see ``text.says_phrase``)."""
        return any(says_phrase(text, phrase, self.endings) for phrase in self.escape)


class SpeechMode(StrEnum):
    GRAMMAR = "grammar"  # only the configured words: robust and reproducible
    OPEN = "open"  # the model's whole vocabulary: slower, and varies run to run


@dataclass(frozen=True, slots=True)
class SpeechSettings:
    """How a call in this language is heard: recogniser mode, model and endpointing."""

    mode: SpeechMode = SpeechMode.GRAMMAR
    model: str | None = None  # model directory; None: the installed model for the language
    end_of_speech_s: float = 0.8  # trailing silence that ends an utterance (pauses inside a
    # request run to 0.7 s; bench/bench_capacity.py counts the premature answers)
    no_speech_timeout_s: float = 5.0  # silence before the caller is asked again
    max_utterance_s: float = 15.0  # a longer utterance is cut here
    # n-best transcripts for the matcher. 1 by default: Vosk 0.3.45 gives different n-best lists
    # (and confidences) for the same audio run to run, while its single best words are stable.
    max_alternatives: int = 1
    # Intent-aware end of turn: after this much of a pause (0: never) a partial transcript that
    # already holds a whole phrase of one intent, matched at early_end_min_score or more, is
    # the answer; otherwise the caller has end_of_speech_s to go on.
    early_end_pause_s: float = 0.25
    early_end_min_score: float = 0.8
    # Soundless audio after which decoding pauses until there is sound again (0: decode all):
    # most of a call is the bot talking or the caller listening, and that costs CPU for nothing.
    skip_silence_s: float = 1.2


@dataclass(frozen=True, slots=True)
class Overflow:
    """Where a caller goes when the bot is too busy to answer in real time (``overflow:``).

    The shell decides when that is (too many calls at the door, or a call's audio waiting too
    long to be decoded); this only says where the caller is put through and what they hear.
    """

    group: str | None = None  # None: the default group
    # Said at the door, before a call the bot cannot take is put through; None: no words,
    # straight to the group (a caller mid-call hears the usual "putting you through").
    say: str | None = None
    # Mid-call, a partial transcript the matcher accepts at this score or more sends the
    # caller to its intent's group rather than to ``group``.
    min_score: float = 0.8


@dataclass(frozen=True, slots=True)
class RecallSettings:
    """Repeat-caller recall: a caller whose last call within ``days`` went to an intent the
    robot did not solve is asked whether they call about it again."""

    days: int = 30


@dataclass(frozen=True, slots=True)
class LanguageConfig:
    """One language's complete intent set: everything a call in that language needs."""

    language: str  # BCP-47, e.g. "en-US", "sv-SE"
    voice: str  # Twilio <Say> voice, e.g. "Polly.Joanna"
    timezone: str
    prompts: Prompts
    words: Words
    thresholds: Thresholds
    groups: Mapping[str, AgentGroup]
    default_group: str
    announcements: tuple[Announcement, ...]
    intents: Mapping[str, Intent]
    source: str = "<built-in>"  # file or folder it was loaded from
    max_turns: int = 4  # questions asked before the caller is handed to a person regardless
    speech: SpeechSettings = SpeechSettings()
    numbers: tuple[str, ...] = ()  # E.164 numbers of the lines that answer in this language
    number_origins: tuple[Origin, ...] = ()  # where each number was written (same order)
    overflow: Overflow = Overflow()
    # Recorded prompts: the prompt's text -> its WAV file, played instead of a voice engine
    # (in the media stream and by TwiML <Play>), so a call can sound like one person.
    recordings: Mapping[str, str] = field(default_factory=dict)
    recall: RecallSettings | None = None  # off unless the YAML has ``recall:``

    def group(self, group_id: str | None) -> AgentGroup:
        return self.groups[group_id or self.default_group]

    @property
    def calling_code(self) -> str | None:
        """The country calling code ("46") a national number typed for this line is read with."""
        return line_calling_code(self.numbers, self.language)

    def today(self, at: dt.datetime) -> dt.date:
        return _as_aware(at).astimezone(ZoneInfo(self.timezone)).date()

    def active_announcements(
        self, at: dt.datetime, after_intent: str | None = None
    ) -> tuple[Announcement, ...]:
        """Announcements due now: general ones (after_intent None) or those tied to an intent."""
        day = self.today(at)
        if after_intent is None:
            return tuple(a for a in self.announcements if not a.after_intents and a.is_active(day))
        return tuple(
            a for a in self.announcements if after_intent in a.after_intents and a.is_active(day)
        )


@dataclass(frozen=True, slots=True)
class Deployment:
    """All languages a deployment serves; calls pick one, the first is the default."""

    languages: Mapping[str, LanguageConfig]
    default_language: str

    def language(self, code: str | None = None) -> LanguageConfig:
        return self.languages[code or self.default_language]

    @property
    def calling_code(self) -> str | None:
        """The calling code all languages' lines share; None when they differ or are unknown."""
        codes = {config.calling_code for config in self.languages.values()}
        return codes.pop() if len(codes) == 1 else None

    def for_number(self, called: str | None) -> LanguageConfig:
        """The language of the line that was called (E.164), else the default language."""
        if called:
            for config in self.languages.values():
                if called in config.numbers:
                    return config
        return self.language()


def _as_aware(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)
