"""TwiML documents the server returns to Twilio or pushes into a live call.

Plain data in, an XML string out, built with the helper library's ``VoiceResponse`` so escaping and
attribute names are Twilio's own. The server decides *when*; this module only decides *how*.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from twilio.twiml.voice_response import VoiceResponse  # type: ignore[import-untyped]

from voicebot.core.config import Destination, DestinationKind

MAX_QUEUE_NAME: Final = 64  # Twilio's limit for <Enqueue> queue names
MAX_CONTEXT_VALUE: Final = 300  # characters of one context value carried in a whisper URL

ContextValue = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Speech:
    """Something the caller hears: a recording (wins when both are set) or text for <Say>."""

    text: str | None = None
    audio_url: str | None = None
    voice: str | None = None  # e.g. "Polly.Joanna"
    language: str | None = None  # e.g. "sv-SE"

    def __post_init__(self) -> None:
        if not self.text and not self.audio_url:
            raise ValueError("Speech needs text or an audio_url")


def _add_speech(response: Any, speech: Sequence[Speech]) -> None:
    for item in speech:
        if item.audio_url:
            response.play(item.audio_url)
        else:
            response.say(item.text, voice=item.voice, language=item.language)


def _xml(response: Any) -> str:
    return str(response.to_xml(xml_declaration=True))


def connect_stream_twiml(
    speech: Sequence[Speech],
    stream_url: str,
    parameters: Mapping[str, str] | None = None,
    *,
    after: Sequence[Speech] = (),
    fallback: Destination | None = None,
) -> str:
    """Play ``speech``, then open the bidirectional media stream to the bot.

    Used for the incoming call and to resume listening after a redirect. ``parameters`` arrive in
    the stream's ``start.customParameters`` (e.g. the caller's From, the language, a call token).
    ``<Connect><Stream>`` blocks until the bot closes the socket; if it closes without having
    redirected the call (a crash, a lost connection), Twilio goes on to ``after`` and then
    transfers to ``fallback`` so the caller still reaches a person.
    """
    if not stream_url.startswith(("wss://", "ws://")):
        raise ValueError(f"stream URL must be ws:// or wss://, got {stream_url!r}")
    response = VoiceResponse()
    _add_speech(response, speech)
    stream = response.connect().stream(url=stream_url)
    for name, value in (parameters or {}).items():
        stream.parameter(name=name, value=value)
    _add_speech(response, after)
    if fallback is not None:
        _add_destination(response, fallback, {}, None)
    return _xml(response)


def say_and_hangup_twiml(speech: Sequence[Speech]) -> str:
    """Last words, then end the call (goodbye, or an announcement that closes the call)."""
    response = VoiceResponse()
    _add_speech(response, speech)
    response.hangup()
    return _xml(response)


def transfer_twiml(
    destination: Destination,
    *,
    context: Mapping[str, ContextValue] | None = None,
    speech: Sequence[Speech] = (),
    whisper_base_url: str | None = None,
    caller_id: str | None = None,
    timeout_s: int | None = None,
    wait_url: str | None = None,
    whisper_context: Mapping[str, ContextValue] | None = None,
) -> str:
    """Say ``speech``, then hand the caller to ``destination`` with what the bot learned.

    number/sip: ``<Dial>``; with ``whisper_base_url`` the agent's leg first fetches that URL
    (``whisper_context``, by default ``context``, in its query string; see ``whisper_url``) and
    hears a summary before bridging.
    workflow: ``<Enqueue workflowSid>`` with ``context`` as TaskRouter task attributes (JSON).
    queue: plain ``<Enqueue>`` (no way to carry context), ``wait_url`` is the hold music TwiML.
    """
    response = VoiceResponse()
    _add_speech(response, speech)
    in_url = context if whisper_context is None else whisper_context
    whisper = whisper_url(whisper_base_url, in_url or {}) if whisper_base_url else None
    _add_destination(response, destination, context or {}, whisper, caller_id, timeout_s, wait_url)
    return _xml(response)


def _add_destination(
    response: Any,
    destination: Destination,
    context: Mapping[str, ContextValue],
    whisper: str | None,
    caller_id: str | None = None,
    timeout_s: int | None = None,
    wait_url: str | None = None,
) -> None:
    kind, value = destination.kind, destination.value
    if kind in (DestinationKind.NUMBER, DestinationKind.SIP):
        dial = response.dial(caller_id=caller_id, timeout=timeout_s)
        if kind is DestinationKind.NUMBER:
            dial.number(value, url=whisper)
        else:
            dial.sip(value, url=whisper)
    elif kind is DestinationKind.QUEUE:
        if not value or len(value) > MAX_QUEUE_NAME:
            raise ValueError(f"queue name must be 1..{MAX_QUEUE_NAME} characters: {value!r}")
        response.enqueue(value, wait_url=wait_url)
    elif kind is DestinationKind.WORKFLOW:
        enqueue = response.enqueue(None, workflow_sid=value, wait_url=wait_url)
        enqueue.task(task_attributes(context))
    else:  # pragma: no cover - exhaustive over DestinationKind
        raise ValueError(f"unsupported destination {destination}")


def task_attributes(context: Mapping[str, ContextValue]) -> str:
    """TaskRouter attributes JSON: what workflows route on and agents see in their UI."""
    return json.dumps(dict(context), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def whisper_url(base_url: str, context: Mapping[str, ContextValue]) -> str:
    """``base_url`` with ``context`` added to its query (None dropped, long values cut).

    The query ends up in Twilio's logs: put only what the agent should hear, never secrets.
    """
    parts = urlsplit(base_url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    for key, value in context.items():
        if value is None:
            continue
        text = str(value).lower() if isinstance(value, bool) else str(value)
        query.append((key, text[:MAX_CONTEXT_VALUE]))
    return urlunsplit(parts._replace(query=urlencode(query)))


DEFAULT_WHISPER: Final = "Caller asked about {topic}: '{transcript}'"
DEFAULT_WHISPER_NO_TRANSCRIPT: Final = "Caller asked about {topic}."


def whisper_text(
    topic: str,
    transcript: str | None,
    template: str = DEFAULT_WHISPER,
    template_no_transcript: str = DEFAULT_WHISPER_NO_TRANSCRIPT,
) -> str:
    """The sentence the agent hears before the caller is bridged."""
    if transcript and transcript.strip():
        return template.format(topic=topic, transcript=transcript.strip())
    return template_no_transcript.format(topic=topic)


def whisper_twiml(text: str, voice: str | None = None, language: str | None = None) -> str:
    """Answer to the agent leg's whisper request: spoken to the agent only, then bridged."""
    response = VoiceResponse()
    response.say(text, voice=voice, language=language)
    return _xml(response)
