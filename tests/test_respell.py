"""Caller words without å, ä, ö are put back into the config's spelling, and nothing else is."""

from __future__ import annotations

from voicebot.core.text import fold_diacritics
from voicebot.matching.respell import Respeller


def test_a_word_the_config_writes_with_diacritics_gets_them_back() -> None:
    respell = Respeller(["jag har glömt mitt lösenord", "när har ni öppet"])
    assert respell("nar har ni oppet") == "när har ni öppet"
    assert respell("jag har glomt losenordet") == "jag har glömt losenordet"


def test_words_the_config_knows_or_cannot_tell_apart_stay_as_they_are() -> None:
    # "for" is a word of this config itself; "ga" folds from both "gå" and "gä" (made up).
    respell = Respeller(["jag vill gå ur", "gä", "for och för", "the box"])
    assert respell("for ga ur") == "for ga ur"
    assert respell("the box") == "the box"


def test_an_english_config_leaves_every_text_alone() -> None:
    respell = Respeller(["i forgot my password", "what are your opening hours"])
    for text in ("i forgot my pasword", "opening hours cafe", "ja nej"):
        assert respell(text) == text


def test_fold_diacritics_writes_swedish_as_ascii() -> None:
    assert fold_diacritics("försäkring å café") == "forsakring a cafe"
