"""``voicebot grammar build``: write each language's recogniser vocabulary (grammar.json) where
calls look for it, a thin shell over ``voicebot.speech.grammar``."""

from __future__ import annotations

import argparse
from pathlib import Path

from voicebot.cli.common import Subparsers, fail, load, usage


def register(subparsers: Subparsers) -> None:
    """Add ``grammar build``."""
    grammar = subparsers.add_parser("grammar", help="compile the recogniser's vocabulary")
    grammar.set_defaults(run=lambda _a: usage(grammar))
    sub = grammar.add_subparsers(title="grammar commands", metavar="ACTION")
    build = sub.add_parser("build", help="write <lang>/grammar.json for every language")
    build.add_argument(
        "--config", type=Path, help="intents file or folder (default: the embedded examples)"
    )
    build.add_argument(
        "--out", type=Path, metavar="DIR", help="write DIR/<lang>/grammar.json (default: next to "
        "each language's intents, where calls look for it)"
    )  # fmt: skip
    build.set_defaults(run=cmd_grammar_build)


def cmd_grammar_build(args: argparse.Namespace) -> int:
    from voicebot.speech.grammar import compile_grammar, write_grammar

    deployment = load(args.config)
    if deployment is None:
        return 1
    for _code, config in sorted(deployment.languages.items()):
        try:
            path = write_grammar(config, args.out)
        except OSError as exc:
            return fail(f"cannot write the {config.language} grammar: {exc}")
        phrases = compile_grammar(config)
        words = {w for p in phrases for w in p.split()}
        print(f"{config.language}: wrote {path} ({len(phrases)} phrases, {len(words)} words)")
    return 0
