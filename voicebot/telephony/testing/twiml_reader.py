"""Reading TwiML as Twilio runs it, for the simulator: what the caller hears before the stream,
the stream's URL and parameters, and what Twilio does when the stream's socket closes (the verbs
after ``<Connect><Stream>``: the fail-safe ``<Dial>`` the simulator follows when the server drops
the stream without redirecting the call). A module of its own because tests read the server's
TwiML with it directly, without simulating a call.
"""

from __future__ import annotations

import json
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Twiml:
    said: tuple[str, ...]  # heard before the stream (or before the final verb)
    stream_url: str | None
    parameters: Mapping[str, str]
    final: str  # what happens after the stream (or instead of it): dial/enqueue/hangup/""
    context: Mapping[str, str]
    after: tuple[str, ...] = ()  # heard once the stream has ended, before ``final``


def dial_target(kind: str, value: str) -> str:
    """``number:+46...``, ``sip:billing@pbx`` (a SIP URI already names its scheme), ..."""
    value = value.strip()
    if kind == "sip" and value.lower().startswith(("sip:", "sips:")):
        return value
    return f"{kind}:{value}"


def played(url: str) -> str:
    """A ``<Play>``: the server's own prompt audio shows its language and text (``telephony.
    prompts`` puts them in the URL), any other recording its URL."""
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    if {"lang", "text", "sig"} <= set(query):
        return f"<Play {query['lang']}> {query['text']}"
    return f"<Play> {url}"


def parse_twiml(xml: str) -> Twiml:
    """What a TwiML document makes the caller hear and where it sends them; the verbs after a
    ``<Connect><Stream>`` are what Twilio runs when that stream's socket closes."""
    root = ET.fromstring(xml)
    said: list[str] = []
    after: list[str] = []
    stream_url: str | None = None
    parameters: dict[str, str] = {}
    final = ""
    context: dict[str, str] = {}
    for verb in root:
        heard = after if stream_url is not None else said
        if verb.tag == "Say":
            heard.append(f"<Say {verb.get('language') or ''}> {verb.text or ''}")
        elif verb.tag == "Play":
            heard.append(played(verb.text or ""))
        elif verb.tag == "Connect":
            stream = verb.find("Stream")
            if stream is not None:
                stream_url = stream.get("url")
                for p in stream.findall("Parameter"):
                    parameters[p.get("name", "")] = p.get("value", "")
        elif verb.tag == "Dial" and not final:
            for target in verb:
                final = "dial " + dial_target(target.tag.lower(), target.text or "")
                whisper = target.get("url")
                if whisper:
                    query = urllib.parse.urlsplit(whisper).query
                    context = dict(urllib.parse.parse_qsl(query))
                break
        elif verb.tag == "Enqueue" and not final:
            workflow = verb.get("workflowSid")
            final = f"enqueue workflow:{workflow}" if workflow else f"enqueue {verb.text}"
            task = verb.find("Task")
            if task is not None and task.text:
                context = {k: str(v) for k, v in json.loads(task.text).items()}
        elif verb.tag == "Hangup" and not final:
            final = "hangup"
    return Twiml(tuple(said), stream_url, parameters, final, context, tuple(after))
