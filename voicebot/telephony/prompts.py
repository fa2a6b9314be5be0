"""One voice per call: what a prompt sounds like, in the media stream and in TwiML.

A caller hears the bot in three places: TwiML before the stream opens (the greeting), audio in
the stream (the prompts in the middle of the call), and TwiML after it (the transfer line, a
closed group's message, goodbye). They used to be Twilio's ``<Say>`` voice around espeak-ng in
the middle: two speakers in one call. Now every prompt is, wherever it is played:

1. its recording, when ops gave one (``recordings:``, a WAV per prompt);
2. else the stream's engine, espeak-ng, when it runs: audio in the stream, and in TwiML a
   ``<Play>`` of this server's ``/twilio/prompt.wav``, which serves that same audio;
3. else (``serve --no-tts``, or espeak-ng missing) Twilio's ``<Say>`` with the language's
   ``voice``, for every prompt of the call.

The prompt URL carries the language and text with an HMAC under the auth token: any instance
behind the load balancer can serve it (no state), and nobody else can make the server
synthesise text of their choosing.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
from urllib.parse import urlencode

from voicebot.core.actions import Play, Say
from voicebot.core.config import LanguageConfig
from voicebot.speech.audio import AudioError, read_wav, ulaw_decode, ulaw_encode, wav_bytes
from voicebot.speech.tts import RATE, Tts, TtsError
from voicebot.telephony.twiml import Speech

__all__ = ["PROMPT_PATH", "clip", "has_voice", "prompt_url", "signature", "speech", "wav_of"]

PROMPT_PATH = "/twilio/prompt.wav"


def signature(secret: str, language: str, text: str) -> str:
    message = f"{language}\n{text}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]


def prompt_url(base_url: str, secret: str, language: str, text: str) -> str:
    query = urlencode({"lang": language, "text": text, "sig": signature(secret, language, text)})
    return f"{base_url}?{query}"


def has_voice(say: Say, config: LanguageConfig, tts: Tts | None) -> bool:
    """Whether ``say`` can be audio of ours (a recording, or the engine), not only <Say>."""
    return say.text in config.recordings or (tts is not None and tts.available)


def speech(
    action: Say | Play,
    config: LanguageConfig,
    tts: Tts | None,
    base_url: str,
    secret: str,
    *,
    plain: bool = False,
) -> Speech:
    """How TwiML plays ``action``: the same audio as the stream would (``<Play>`` of our prompt
    URL), or Twilio's ``<Say>`` when there is no audio of ours (or ``plain``: a TwiML too long
    with the URLs in it)."""
    if isinstance(action, Play):
        return Speech(audio_url=action.url)
    if has_voice(action, config, tts) and not plain:
        # the text rides along for what only reads it (the stream parameters' expiry)
        url = prompt_url(base_url, secret, action.language, action.text)
        return Speech(text=action.text, audio_url=url, language=action.language)
    return Speech(text=action.text, voice=action.voice, language=action.language)


def clip(say: Say, config: LanguageConfig, tts: Tts | None) -> bytes:
    """8 kHz mu-law audio of ``say``: its recording, else espeak-ng. Raises ``TtsError``; blocks
    (file or engine), so call it from a thread."""
    path = config.recordings.get(say.text)
    if path is not None:
        try:
            return _recording(path, os.stat(path).st_mtime_ns)
        except (OSError, AudioError) as exc:
            raise TtsError(f"the recording {path} cannot be played: {exc}") from None
    if tts is None or not tts.available:
        raise TtsError("no voice engine (serve --no-tts, or espeak-ng is missing)")
    return tts.mulaw(say.text, say.language)


@functools.lru_cache(maxsize=64)
def _recording(path: str, mtime_ns: int) -> bytes:
    """A recorded prompt as telephone audio; read again when the file changes (``mtime_ns``)."""
    return ulaw_encode(read_wav(path).resampled(RATE).samples)


def wav_of(mulaw: bytes) -> bytes:
    """Telephone audio as a 16-bit PCM WAV file, the kind Twilio's ``<Play>`` takes."""
    return wav_bytes(ulaw_decode(mulaw), RATE)
