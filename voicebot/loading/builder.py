"""Build one language's ``LanguageConfig`` from its top-level YAML entries.

``Builder.build`` checks every section (top-level settings, thresholds, speech, prompts, words,
agent groups with their destinations) and hands intents and announcements to ``actions``, hours
to ``hours``; names used before they are defined are collected in ``References`` and checked at
the end. A config is built only when no problem was found, so nothing half-valid is ever served.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from voicebot.core.config import (
    ActionKind,
    AgentGroup,
    Announcement,
    Intent,
    LanguageConfig,
    Origin,
    Overflow,
    Prompts,
    RecallSettings,
    SpeechMode,
    SpeechSettings,
    Thresholds,
    Words,
)
from voicebot.core.phone import normalize as normalize_phone
from voicebot.loading.actions import read_announcements, read_intents
from voicebot.loading.defaults import language_defaults
from voicebot.loading.files import Entry
from voicebot.loading.groups import read_groups
from voicebot.loading.keys import (
    OVERFLOW_KEYS,
    PROMPT_KEYS,
    RECALL_KEYS,
    REQUIRED_TOP,
    REQUIRED_WORD_KEYS,
    SPEECH_KEYS,
    THRESHOLD_KEYS,
    WORD_KEYS,
)
from voicebot.loading.problems import Problem
from voicebot.loading.reader import is_null, quote
from voicebot.loading.refs import Ref, References
from voicebot.speech.audio import AudioError, read_wav

if TYPE_CHECKING:
    import yaml

    from voicebot.loading.reader import Reader

__all__ = ["Builder"]

_LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(?:-[A-Z][a-z]{3})?(?:-(?:[A-Z]{2}|\d{3}))?$")
_MAX_TURNS = 10
_SPEECH_SECONDS = ("end_of_speech_s", "no_speech_timeout_s", "max_utterance_s")
_MAX_SPEECH_S = 120.0
_MAX_ALTERNATIVES = 10
_MAX_EARLY_PAUSE_S = 5.0
_MAX_RECALL_DAYS = 366

# Placeholders each prompt may use, and those it must use.
_PROMPT_FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "no_match": (frozenset({"hints"}), frozenset()),
    "clarify": (frozenset({"a", "b"}), frozenset({"a", "b"})),
    "transfer": (frozenset({"group"}), frozenset()),
    "recall": (frozenset({"label"}), frozenset({"label"})),
}
# Prompts with a default of "" on ``Prompts``: a language without built-in ones must give them
# only when its configuration uses them (a lookup intent; recall on).
_OPTIONAL_PROMPTS = frozenset(f.name for f in fields(Prompts) if f.default is not MISSING)


@dataclass(slots=True)
class Builder:
    """Builds one language from its top-level entries: every section checked, every problem
    recorded in ``problems``, and a ``LanguageConfig`` only when there was none."""

    problems: list[Problem]
    refs: References = field(default_factory=References)

    def build(
        self,
        entries: Mapping[str, Entry],
        source: str,
        whole: Origin,
        folder_language: str | None,
        *,
        partial_intents: Collection[str] | None = None,
    ) -> LanguageConfig | None:
        """Check every section and build the language; ``partial_intents`` checks a fragment.

        A fragment (the importer's routes file) has no intents of its own: it is checked against
        the given intent names, its group references are not checked (missing groups get
        created) and nothing is built.
        """
        before = len(self.problems)
        partial = partial_intents is not None

        def get(key: str) -> Entry | None:
            return entries.get(key)

        for key in () if partial else REQUIRED_TOP:
            if key not in entries:
                self.problems.append(Problem(whole, f"missing required top-level key {quote(key)}"))

        language = self._language(get("language"), whole, folder_language)
        primary = (language or "").split("-")[0]

        voice = language_defaults(primary).voice
        if (e := get("voice")) is not None:
            voice = e.ctx.text(e.value, "", "'voice'")
        elif voice is None and language is not None:
            self.problems.append(
                Problem(
                    whole,
                    f"there is no built-in voice for {language}; set 'voice:' to a Twilio <Say> "
                    "voice such as Polly.Joanna",
                )
            )

        timezone: str | None = "UTC"
        timezone_given = False
        if (e := get("timezone")) is not None:
            timezone = e.ctx.timezone(e.value, "", "'timezone'")
            timezone_given = True

        max_turns: int | None = 4
        if (e := get("max_turns")) is not None:
            max_turns = e.ctx.integer(e.value, "", "'max_turns'")
            if max_turns is not None and not 1 <= max_turns <= _MAX_TURNS:
                e.ctx.fail(e.value, f"'max_turns' must be between 1 and {_MAX_TURNS}")
                max_turns = None

        numbers = self._numbers(get("numbers"))
        thresholds = self._thresholds(get("thresholds"))
        speech = self._speech(get("speech"))
        prompts = self._prompts(get("prompts"), primary, whole, language)
        recordings = self._recordings(get("recordings"), prompts)
        words = self._words(get("words"), primary, whole, language)

        groups: dict[str, AgentGroup] | None = None
        if (e := get("groups")) is not None:
            region = (language or "").partition("-")[2].upper() or None
            groups = read_groups(e, timezone or "UTC", timezone_given, self.refs, region)

        default_group: str | None = None
        if (e := get("default_group")) is not None:
            default_group = e.ctx.text(e.value, "", "'default_group'")
            if default_group is not None:
                self.refs.groups.append(Ref(e.ctx, e.value, default_group, "'default_group'"))

        overflow = self._overflow(get("overflow"))

        intents: dict[str, Intent] | None = None
        if (e := get("intents")) is not None:
            sms_sent = prompts.sms_sent if prompts is not None else ""
            intents = read_intents(e, sms_sent, self.refs)

        announcements: tuple[Announcement, ...] | None = ()
        if (e := get("announcements")) is not None:
            announcements = read_announcements(e, self.refs)

        recall = self._recall(get("recall"))
        if prompts is not None and intents is not None:
            self._needed_prompts(prompts, intents, get("recall"), whole, language)

        if partial_intents is not None:
            self.refs.known_groups = None
            self.refs.known_intents = set(partial_intents)
        self.refs.check()

        if len(self.problems) > before or partial:
            return None
        assert language is not None and voice is not None and timezone is not None
        assert max_turns is not None and thresholds is not None and prompts is not None
        assert words is not None and groups is not None and default_group is not None
        assert intents is not None and announcements is not None and speech is not None
        assert numbers is not None and recordings is not None and overflow is not None
        return LanguageConfig(
            language=language,
            voice=voice,
            timezone=timezone,
            prompts=prompts,
            words=words,
            thresholds=thresholds,
            groups=MappingProxyType(groups),
            default_group=default_group,
            announcements=announcements,
            intents=MappingProxyType(intents),
            source=source,
            max_turns=max_turns,
            speech=speech,
            numbers=tuple(n for n, _ in numbers),
            number_origins=tuple(o for _, o in numbers),
            overflow=overflow,
            recordings=MappingProxyType(recordings),
            recall=recall,
        )

    # -- top-level scalars and small sections

    def _recall(self, e: Entry | None) -> RecallSettings | None:
        """``recall: {days: N}`` turns repeat-caller recall on; absent or null: off."""
        if e is None or is_null(e.value):
            return None
        pairs = e.ctx.mapping(e.value, "recall", "'recall'", RECALL_KEYS, ["days"], owner=e.key)
        if pairs is None or "days" not in pairs:
            return None
        days = e.ctx.integer(pairs["days"][1], "recall", "'days'")
        if days is not None and not 1 <= days <= _MAX_RECALL_DAYS:
            e.ctx.fail(pairs["days"][1], f"recall: 'days' must be between 1 and {_MAX_RECALL_DAYS}")
            return None
        return None if days is None else RecallSettings(days)

    def _needed_prompts(
        self,
        prompts: Prompts,
        intents: Mapping[str, Intent],
        recall: Entry | None,
        whole: Origin,
        language: str | None,
    ) -> None:
        """A language without built-in lookup or recall prompts must give those it uses."""
        lookups = [i for i in intents.values() if i.action.kind is ActionKind.LOOKUP]
        if lookups and not prompts.lookup_wait:
            self.problems.append(
                Problem(
                    lookups[0].origin,
                    f"there is no built-in 'lookup_wait' prompt for {language}; add it under "
                    "'prompts:' (what the caller hears while the lookup runs)",
                )
            )
        if recall is not None and not is_null(recall.value) and not prompts.recall:
            self.problems.append(
                Problem(
                    recall.ctx.at(recall.key),
                    f"there is no built-in 'recall' prompt for {language}; add it under "
                    "'prompts:' (e.g. \"Are you calling about {label} again?\")",
                )
            )

    def _language(self, e: Entry | None, whole: Origin, folder: str | None) -> str | None:
        if e is None:
            if folder is not None and _LANGUAGE_RE.match(folder):
                return folder
            self.problems.append(
                Problem(whole, "missing required top-level key 'language' (e.g. language: en-US)")
            )
            return None
        code = e.ctx.text(e.value, "", "'language'")
        if code is None:
            return None
        if not _LANGUAGE_RE.match(code):
            guess = _suggest_language(code)
            hint = f"did you mean {quote(guess)}?" if guess else "write it like en-US or sv-SE"
            e.ctx.fail(e.value, f"{quote(code)} is not a language code ({hint})")
            return None
        if folder is not None and _LANGUAGE_RE.match(folder) and folder != code:
            e.ctx.fail(
                e.value,
                f"the folder is named {folder} but 'language' says {code}; make them the same",
            )
            return None
        return code

    def _numbers(self, e: Entry | None) -> list[tuple[str, Origin]] | None:
        """The phone lines answered in this language, in E.164 form, each listed once."""
        if e is None:
            return []
        items = e.ctx.texts(e.value, "numbers", "'numbers'", single_ok=True)
        if items is None:
            return None
        out: dict[str, Origin] = {}
        ok = True
        for value, origin in items:
            number = normalize_phone(value)
            if number is None:
                e.ctx.fail(
                    origin,
                    f"numbers: {quote(value)} is not a phone number in international form; write "
                    "'+', the country code and the number (e.g. \"+46101234500\")",
                )
                ok = False
            elif number in out:
                first = out[number]
                e.ctx.fail(origin, f"numbers: {number} is already listed on line {first.line}")
                ok = False
            else:
                out[number] = origin
        return list(out.items()) if ok else None

    def _thresholds(self, e: Entry | None) -> Thresholds | None:
        if e is None:
            return Thresholds()
        where = "thresholds"
        pairs = e.ctx.mapping(e.value, where, "'thresholds'", THRESHOLD_KEYS, owner=e.key)
        if pairs is None:
            return None
        values: dict[str, float] = {}
        ok = True
        for key, (_, vnode) in pairs.items():
            value = _score(e.ctx, vnode, where, key)
            if value is None:
                ok = False
            else:
                values[key] = value
        result = Thresholds(**values)
        if result.reject > result.accept and ("reject" in values or "accept" in values):
            node = pairs.get("reject", pairs.get("accept", (e.key, e.value)))[1]
            e.ctx.fail(
                node,
                f"thresholds: 'reject' ({result.reject:g}) must not be above 'accept' "
                f"({result.accept:g}); nothing between them could ever be accepted",
            )
            return None
        return result if ok else None

    def _overflow(self, e: Entry | None) -> Overflow | None:
        """Where callers go when the bot is too busy (``Overflow``): a group, words, a score."""
        if e is None:
            return Overflow()
        where = "overflow"
        pairs = e.ctx.mapping(e.value, where, "'overflow'", OVERFLOW_KEYS, owner=e.key)
        if pairs is None:
            return None
        ok = True
        group: str | None = None
        if "group" in pairs:
            vnode = pairs["group"][1]
            group = e.ctx.text(vnode, where, "'group'")
            if group is None:
                ok = False
            else:
                self.refs.groups.append(Ref(e.ctx, vnode, group, "overflow: 'group'"))
        say: str | None = None
        if "say" in pairs:
            say = e.ctx.template(pairs["say"][1], where, "'say'")
            ok = ok and say is not None
        min_score = Overflow().min_score  # on the class it is a slot descriptor
        if "min_score" in pairs:
            value = _score(e.ctx, pairs["min_score"][1], where, "min_score")
            ok = ok and value is not None
            min_score = value if value is not None else min_score
        return Overflow(group, say, min_score) if ok else None

    def _speech(self, e: Entry | None) -> SpeechSettings | None:
        if e is None:
            return SpeechSettings()
        where = "speech"
        pairs = e.ctx.mapping(e.value, where, "'speech'", SPEECH_KEYS, owner=e.key)
        if pairs is None:
            return None
        ok = True
        mode = SpeechMode.GRAMMAR
        if "mode" in pairs:
            vnode = pairs["mode"][1]
            text = e.ctx.text(vnode, where, "'mode'")
            if text is not None and text not in tuple(SpeechMode):
                choices = [m.value for m in SpeechMode]
                e.ctx.fail(vnode, f"speech: 'mode' is {quote(text)}; use {' or '.join(choices)}")
                text = None
            ok = ok and text is not None
            mode = SpeechMode(text) if text is not None else mode
        model: str | None = None
        if "model" in pairs:
            model = e.ctx.text(pairs["model"][1], where, "'model'")
            ok = ok and model is not None
            if model is not None:
                model = _model_path(model, e.ctx.file)
        seconds: dict[str, float] = {}
        for key in _SPEECH_SECONDS:
            if key not in pairs:
                continue
            vnode = pairs[key][1]
            value = e.ctx.number(vnode, where, quote(key))
            if value is not None and not 0.0 < value <= _MAX_SPEECH_S:
                e.ctx.fail(
                    vnode,
                    f"speech: {quote(key)} must be more than 0 and at most {_MAX_SPEECH_S:g} "
                    f"seconds, not {value:g}",
                )
                value = None
            if value is None:
                ok = False
            else:
                seconds[key] = value
        alternatives = SpeechSettings().max_alternatives  # on the class it is a slot descriptor
        if "max_alternatives" in pairs:
            vnode = pairs["max_alternatives"][1]
            n = e.ctx.integer(vnode, where, "'max_alternatives'")
            if n is not None and not 1 <= n <= _MAX_ALTERNATIVES:
                e.ctx.fail(
                    vnode, f"speech: 'max_alternatives' must be between 1 and {_MAX_ALTERNATIVES}"
                )
                n = None
            ok = ok and n is not None
            alternatives = n if n is not None else alternatives
        early: dict[str, float] = {}
        for key, top in (
            ("early_end_pause_s", _MAX_EARLY_PAUSE_S),
            ("early_end_min_score", 1.0),
            ("skip_silence_s", _MAX_SPEECH_S),
        ):
            if key not in pairs:
                continue
            vnode = pairs[key][1]
            value = e.ctx.number(vnode, where, quote(key))
            if value is not None and not 0.0 <= value <= top:
                e.ctx.fail(
                    vnode, f"speech: {quote(key)} must be between 0 and {top:g}, not {value:g}"
                )
                value = None
            if value is None:
                ok = False
            else:
                early[key] = value
        if not ok:
            return None
        return SpeechSettings(mode, model, max_alternatives=alternatives, **seconds, **early)

    def _prompts(
        self, e: Entry | None, primary: str, whole: Origin, language: str | None
    ) -> Prompts | None:
        values: dict[str, str] = dict(language_defaults(primary).prompts)
        ok = True
        if e is not None:
            pairs = e.ctx.mapping(e.value, "prompts", "'prompts'", PROMPT_KEYS, owner=e.key)
            if pairs is None:
                return None
            for key, (_, vnode) in pairs.items():
                allowed, required = _PROMPT_FIELDS.get(key, (frozenset(), frozenset()))
                text = e.ctx.template(vnode, "prompts", quote(key), allowed, required)
                if text is None:
                    ok = False
                else:
                    values[key] = text
        missing = [k for k in PROMPT_KEYS if k not in values and k not in _OPTIONAL_PROMPTS]
        if self._no_defaults(e, whole, language, missing, "prompts", "prompts"):
            return None
        return Prompts(**values) if ok and not missing else None

    def _recordings(self, e: Entry | None, prompts: Prompts | None) -> dict[str, str] | None:
        """``recordings: {greeting: hello.wav}``: prompt key -> WAV file (relative to the file
        that names it), keyed by the prompt's text, which is what the dialogue says."""
        if e is None:
            return {}
        pairs = e.ctx.mapping(e.value, "recordings", "'recordings'", PROMPT_KEYS, owner=e.key)
        if pairs is None or prompts is None:
            return None
        out: dict[str, str] = {}
        for key, (_, vnode) in pairs.items():
            name = e.ctx.text(vnode, "recordings", quote(key))
            if name is None:
                continue
            text = getattr(prompts, key)
            if "{" in text:
                e.ctx.fail(
                    vnode,
                    f"recordings: prompts.{key} is filled in on each call ({text!r}), so one "
                    "recording cannot say it; leave it to the voice engine",
                )
                continue
            path = Path(e.ctx.at(vnode).file).parent / name
            try:
                read_wav(path)
            except (OSError, AudioError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                e.ctx.fail(vnode, f"recordings: {quote(key)}: {path} is not a WAV file ({reason})")
                continue
            out[text] = str(path.resolve())
        return out if len(out) == len(pairs) else None

    def _words(
        self, e: Entry | None, primary: str, whole: Origin, language: str | None
    ) -> Words | None:
        values: dict[str, tuple[str, ...]] = dict(language_defaults(primary).words)
        ok = True
        if e is not None:
            pairs = e.ctx.mapping(e.value, "words", "'words'", WORD_KEYS, owner=e.key)
            if pairs is None:
                return None
            for key, (_, vnode) in pairs.items():
                items = e.ctx.texts(vnode, "words", quote(key), single_ok=True)
                if items is None:
                    ok = False
                elif not items:
                    e.ctx.fail(vnode, f"words: {quote(key)} needs at least one word")
                    ok = False
                else:
                    values[key] = tuple(t for t, _ in items)
        missing = [k for k in REQUIRED_WORD_KEYS if k not in values]
        if self._no_defaults(e, whole, language, missing, "word lists", "words"):
            return None
        return Words(**values) if ok and not missing else None

    def _no_defaults(
        self,
        e: Entry | None,
        whole: Origin,
        language: str | None,
        missing: list[str],
        things: str,
        section: str,
    ) -> bool:
        """Report keys a language without built-in ``things`` must give itself; True if any.

        Prompts and words both start from the language's defaults, so for a language with none
        the fix is the same: name the keys still missing and the section to add them under.
        Nothing is reported without a valid language (that problem is reported already).
        """
        if not missing or language is None:
            return False
        origin = e.ctx.at(e.key) if e is not None else whole
        self.problems.append(
            Problem(
                origin,
                f"there are no built-in {things} for {language}; add "
                f"{', '.join(missing)} under '{section}:'",
            )
        )
        return True


def _score(ctx: Reader, node: yaml.Node, where: str, key: str) -> float | None:
    """A score the matcher compares against (``thresholds``, ``overflow.min_score``): a number
    from 0 to 1, else a one-line error at ``node`` and ``None``."""
    value = ctx.number(node, where, quote(key))
    if value is not None and not 0.0 <= value <= 1.0:
        ctx.fail(node, f"{where}: {quote(key)} must be between 0 and 1, not {value:g}")
        return None
    return value


def _suggest_language(code: str) -> str | None:
    parts = re.split(r"[-_]", code.strip())
    if len(parts) == 2 and parts[0].isalpha() and parts[1].isalpha():
        fixed = f"{parts[0].lower()}-{parts[1].upper()}"
        if _LANGUAGE_RE.match(fixed):
            return fixed
    return None


def _model_path(text: str, file: str) -> str:
    """A model directory as written; a relative one is taken from the config file's folder."""
    path = Path(text).expanduser()
    base = Path(file).parent
    if path.is_absolute() or not Path(file).is_file():
        return str(path)
    return str(base / path)
