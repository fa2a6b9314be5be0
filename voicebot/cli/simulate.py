"""``voicebot simulate``: call a running server as Twilio would (signed webhook, Media Streams,
a local fake of the REST API) and print what the bot said, texted and where it sent the call."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path

from voicebot.cli.common import Subparsers, UsageError, fail
from voicebot.telephony.settings import (
    ACCOUNT_SID_VAR,
    API_BASE_URL_VAR,
    AUTH_TOKEN_VAR,
    DEV_ACCOUNT_SID,
    DEV_AUTH_TOKEN,
    DEV_REST_PORT,
    TwilioEnv,
)


def register(subparsers: Subparsers) -> None:
    sim = subparsers.add_parser("simulate", help="call a running server as Twilio would")
    sim.add_argument("wavs", nargs="*", type=Path, help="what the caller says, one file per turn")
    sim.add_argument("--url", default="http://127.0.0.1:8080", help="the server's public URL")
    sim.add_argument("--from", dest="caller", default="+821012345678", help="or 'withheld'")
    sim.add_argument("--to", default="+82212340000", help="the number called")
    sim.add_argument("--dtmf", default="", help="keys pressed after the audio, e.g. 0")
    sim.add_argument("--calls", type=int, default=1, help="concurrent calls (default 1)")
    sim.add_argument(
        "--rotate", action="store_true", help="with --calls: call i says only WAV number i mod n"
    )
    sim.add_argument("--stagger", type=float, default=0.0, help="seconds between call starts")
    sim.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="with --calls: each line calls again as soon as its call ends, this many calls in "
        "all: the server holds --calls calls at once, each at its own stage, as on a busy line "
        "(default 1: all calls start together)",
    )
    sim.add_argument("--realtime", action="store_true", help="send speech at real-time pace")
    sim.add_argument("--barge-in", action="store_true", help="talk over the bot's prompts")
    sim.add_argument("--auth-token", help=f"default: ${AUTH_TOKEN_VAR} or the dev token")
    sim.add_argument("--account-sid", help=f"default: ${ACCOUNT_SID_VAR} or the dev account")
    sim.add_argument(
        "--rest-port",
        type=int,
        default=DEV_REST_PORT,
        help=f"port of the fake Twilio REST API run here (default {DEV_REST_PORT}; the server's "
        f"{API_BASE_URL_VAR} must point at it)",
    )
    sim.add_argument("--no-fake", action="store_true", help="do not run the fake REST API")
    sim.add_argument("--max-wait", type=float, default=30.0, help="seconds to wait for the bot")
    sim.add_argument("--json", action="store_true", help="print one JSON object")
    sim.set_defaults(run=cmd_simulate)


def cmd_simulate(args: argparse.Namespace) -> int:
    from voicebot.speech.audio import AudioError
    from voicebot.telephony.testing.call_report import format_line, format_report, summary
    from voicebot.telephony.testing.fake_rest import FakeTwilio
    from voicebot.telephony.testing.simulator import SimOptions, load_audio, simulate_calls

    if args.calls < 1:
        raise UsageError("--calls must be at least 1")
    if args.rounds < 1:
        raise UsageError("--rounds must be at least 1")
    if not args.wavs and not args.dtmf:
        raise UsageError("give the caller something to do: WAV files and/or --dtmf")
    try:
        turns = [load_audio(p) for p in args.wavs]
    except (AudioError, OSError) as exc:
        return fail(str(exc))
    twilio = TwilioEnv.read(os.environ)
    token = args.auth_token or twilio.auth_token or DEV_AUTH_TOKEN
    account = args.account_sid or twilio.account_sid or DEV_ACCOUNT_SID
    caller = None if args.caller.lower() in ("", "withheld", "anonymous") else args.caller
    options = SimOptions(
        url=args.url,
        auth_token=token,
        account_sid=account,
        caller=caller,
        to=args.to,
        dtmf=args.dtmf,
        realtime=args.realtime,
        barge_in=args.barge_in,
        max_wait_s=args.max_wait,
    )
    fake = None
    if not args.no_fake:
        try:
            fake = FakeTwilio(account, token, port=args.rest_port).start()
        except OSError as exc:
            print(f"voicebot: cannot run the fake REST API on port {args.rest_port}: {exc}")
            return 1
    try:
        reports = asyncio.run(
            simulate_calls(
                turns,
                options,
                fake,
                args.calls,
                rotate=args.rotate,
                stagger_s=args.stagger,
                rounds=args.rounds,
            )
        )
    finally:
        if fake is not None:
            fake.stop()
    result = summary(reports)
    if args.json:
        calls = [
            {
                "call_sid": r.call_sid,
                "said": r.said,
                "texted": r.texted,
                "decision": r.decision,
                "context": r.context,
                "latency_ms": None if r.latency_s is None else round(r.latency_s * 1000, 1),
                "error": r.error,
                "audio_s": round(r.audio_s, 2),
            }
            for r in reports
        ]
        print(json.dumps({**result, "results": calls}, ensure_ascii=False))
    elif len(reports) == 1:
        print(format_report(reports[0]))
    else:
        for r in reports:
            print(format_line(r))
        print(json.dumps(result, ensure_ascii=False))
    if any(r.rejected is not None for r in reports):
        return 1
    return 1 if result["undecided"] else 0  # --max-wait passed without a decision
