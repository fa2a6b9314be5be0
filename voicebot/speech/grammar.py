"""The grammar-mode vocabulary of a language, compiled to ``grammar.json`` next to its config.

The file is a reviewable, diffable artifact: what the recogniser may hear, byte-identical for the
same intents. It stores a hash of what it was compiled from (the phrase list the config yields),
so the runtime can tell whether it is stale without trusting file times: a fresh file is used as
is, a stale one is ignored with a warning and the grammar is compiled in memory instead.

The phrase list itself is built here too (``grammar_phrases``, ``grammar_text``), as is its
check against a loaded model (``unknown_words``, ``build_grammar``, which the recogniser calls):
everything about what grammar mode may hear is in one module.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from voicebot.core.config import LanguageConfig
from voicebot.speech.transcripts import UNK
from voicebot.speech.vosk_model import SpeechModel

__all__ = [
    "GRAMMAR_FILE",
    "GrammarError",
    "GrammarFile",
    "build_grammar",
    "compile_grammar",
    "grammar_json",
    "grammar_path",
    "grammar_phrases",
    "grammar_text",
    "read_grammar",
    "runtime_grammar",
    "source_hash",
    "unknown_grammar_words",
    "unknown_words",
    "vocabulary_gaps",
    "write_grammar",
]

GRAMMAR_FILE = "grammar.json"
FORMAT = 1


class GrammarError(ValueError):
    """A grammar the model cannot honour (no grammar support, or words it would drop)."""


_NON_GRAMMAR = re.compile(r"[^\w']+|_")


def grammar_phrases(config: LanguageConfig) -> list[str]:
    """Everything a caller may usefully say in this language, for a grammar-mode recogniser:
    intent phrases, examples and labels, and the escape/yes/no words; deduplicated and sorted
    so the built grammar is reproducible."""
    texts: list[str] = [*config.words.escape, *config.words.yes, *config.words.no]
    for intent in config.intents.values():
        texts += [*intent.phrases, *intent.examples, intent.label]
    return sorted({n for n in map(grammar_text, texts) if n})


def grammar_text(text: str) -> str:
    """Lower-case words without punctuation, spelled as Vosk vocabularies spell them.

    Unlike ``text.normalize`` this keeps apostrophes inside words: the models know "that's",
    not "thats". The matcher normalises the recogniser's output again, so both agree.
    """
    text = unicodedata.normalize("NFC", text).casefold()
    words = (w.strip("'") for w in _NON_GRAMMAR.split(text))
    return " ".join(w for w in words if w)


def unknown_words(model: SpeechModel, phrases: Iterable[str]) -> list[str]:
    """Grammar words Vosk would silently drop, in first-seen order, without duplicates."""
    missing: dict[str, None] = {}
    for phrase in phrases:
        for word in phrase.split():
            known = model.unk_word is not None if word == UNK else model.has_word(word)
            if not known:
                missing[word] = None
    return list(missing)


def build_grammar(model: SpeechModel, phrases: Sequence[str], allow_unknown: bool) -> list[str]:
    if not model.supports_grammar:
        raise GrammarError(
            f"the model in {model.path} does not support grammars (no graph/HCLr.fst and "
            "graph/Gr.fst); use open mode or a small Vosk model"
        )
    missing = set(unknown_words(model, phrases))
    if missing and not allow_unknown:
        raise GrammarError(
            f"the model in {model.path} does not know these grammar words, which Vosk would "
            f"silently drop: {', '.join(unknown_words(model, phrases))}"
        )
    unk = model.unk_word
    out: dict[str, None] = {}  # ordered set: Vosk builds its bigram model from these lines
    for phrase in phrases:
        kept = [(unk or w) if w == UNK else w for w in phrase.split() if w not in missing]
        if kept:
            out[" ".join(kept)] = None
    if not any(p != unk for p in out):
        raise GrammarError("the grammar has no phrase with a word the model knows")
    if unk is not None:
        out[unk] = None  # lets out-of-grammar speech land somewhere visible
    return list(out)


def compile_grammar(config: LanguageConfig) -> list[str]:
    """Every phrase a caller may usefully say (sorted, deduplicated), then ``[unk]`` so
    out-of-grammar speech lands somewhere visible instead of on an intent's words."""
    return [*grammar_phrases(config), UNK]


def source_hash(config: LanguageConfig) -> str:
    """SHA-256 of the compiled phrases: edits that change nothing heard keep the file fresh."""
    data = json.dumps(grammar_phrases(config), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def grammar_json(config: LanguageConfig) -> str:
    """The file's text: sorted keys, fixed indentation, no timestamps, so builds are diffable."""
    phrases = compile_grammar(config)
    words = sorted({w for p in phrases for w in p.split()})
    doc = {
        "format": FORMAT,
        "language": config.language,
        "source_sha256": source_hash(config),
        "phrases": phrases,
        "words": words,
    }
    return json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def grammar_path(config: LanguageConfig, out_dir: Path | None = None) -> Path:
    """``<out_dir>/<lang>/grammar.json``, or next to the language's config when no out_dir."""
    if out_dir is not None:
        return out_dir / config.language / GRAMMAR_FILE
    source = Path(config.source)
    folder = source if source.is_dir() else source.parent
    return folder / GRAMMAR_FILE


def write_grammar(config: LanguageConfig, out_dir: Path | None = None) -> Path:
    """Write the grammar file atomically (a half-written file must never be read at runtime)."""
    path = grammar_path(config, out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(grammar_json(config).encode("utf-8"))
    tmp.replace(path)
    return path


@dataclass(frozen=True)
class GrammarFile:
    path: Path
    language: str
    source_sha256: str
    phrases: list[str]


def read_grammar(path: Path) -> GrammarFile | None:
    """The grammar file at ``path``; None when absent or unreadable (the caller compiles)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        phrases = doc["phrases"]
        if not isinstance(phrases, list) or not all(isinstance(p, str) for p in phrases):
            return None
        return GrammarFile(path, str(doc["language"]), str(doc["source_sha256"]), phrases)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def runtime_grammar(config: LanguageConfig, warn: Callable[[str], None] | None = None) -> list[str]:
    """The grammar a call uses: the built file when it is up to date, else compiled now."""
    path = grammar_path(config)
    built = read_grammar(path) if path.is_file() else None
    if built is not None and built.source_sha256 == source_hash(config):
        return built.phrases
    if built is not None and warn is not None:
        warn(
            f"{path} is out of date with the {config.language} intents; using the intents "
            "directly (run: voicebot grammar build)"
        )
    return compile_grammar(config)


def unknown_grammar_words(config: LanguageConfig) -> list[str] | None:
    """Grammar words the language's installed model does not know (Vosk would drop them
    silently); None when no model is installed to ask."""
    from voicebot.speech.model_store import ModelError

    try:
        return vocabulary_gaps(config)
    except ModelError:
        return None


def vocabulary_gaps(config: LanguageConfig) -> list[str]:
    """Grammar words the language's model does not know; ``ModelError`` saying how to get the
    model when there is none, so ``voicebot check`` can tell ops the check was not made."""
    from voicebot.speech import model_store as models
    from voicebot.speech.vosk_model import REGISTRY

    where = models.configured(config.speech.model, config.language)
    return unknown_words(REGISTRY.get(where), compile_grammar(config))
