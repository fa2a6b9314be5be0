"""``voicebot listen``: talk to the bot through a microphone. A thin shell over
``voicebot.shells.listen``; a missing microphone or model is one line on stderr, never a
traceback."""

from __future__ import annotations

import argparse
import sys

from voicebot.cli.common import Subparsers, caller_arg, config_args, fail, language
from voicebot.cli.replay import DEFAULT_CALLER


def register(subparsers: Subparsers) -> None:
    """Add ``listen``."""
    listen = subparsers.add_parser("listen", help="talk to the bot live through a microphone")
    config_args(listen)
    listen.add_argument("--device", type=int, metavar="N", help="input device (see --list-devices)")
    listen.add_argument("--list-devices", action="store_true", help="list microphones and exit")
    listen.add_argument(
        "--caller", default=DEFAULT_CALLER, help="caller's number, or 'withheld' (no SMS)"
    )
    listen.add_argument("--quiet", action="store_true", help="show prompts without speaking them")
    listen.set_defaults(run=cmd_listen)


def cmd_listen(args: argparse.Namespace) -> int:
    from voicebot.shells.listen import (
        PromptSpeaker,
        input_devices,
        microphone,
        run_listen,
        warn,
    )
    from voicebot.speech.pipeline import load_speech_model, speech_kit

    # A MicrophoneError (no device, no PortAudio) is a VoicebotError: main prints it.
    if args.list_devices:
        devices = input_devices()
        if not devices:
            return fail("no input device found")
        for index, name, rate in devices:
            print(f"{index:3}  {name} ({rate} Hz)")
        return 0
    config = language(args)
    if config is None:
        return 1
    mic = microphone(args.device)
    model = load_speech_model(config)
    kit = speech_kit(config, model, warn)
    caller = caller_arg(args.caller)
    speaker = None if args.quiet else PromptSpeaker(warn)
    print(
        f"voicebot listen ({config.language}, {config.speech.mode.value} mode) on {mic.name}"
        f" at {mic.rate} Hz; speak after the prompt, Ctrl-C hangs up",
        flush=True,
    )
    run_listen(config, kit, mic, sys.stdout, caller=caller, speaker=speaker)
    return 0
