"""Far out-of-scope requests for a support line: none of them should be routed.

Written by hand for bench/experiments (not taken from the shared datasets), so they can be
measured against the example deployment and against HWU64 configs without leaking test text.
"""

from __future__ import annotations

FAR_OOS = (
    "what's the weather in Paris",
    "will it rain tomorrow",
    "how cold is it outside",
    "play some jazz",
    "play the new taylor swift album",
    "turn up the music",
    "book a table for two",
    "reserve a table at an italian restaurant tonight",
    "order me a large pepperoni pizza",
    "tell me a joke",
    "sing me a song",
    "how tall is mount everest",
    "who won the football match yesterday",
    "what is the capital of australia",
    "how many calories are in a banana",
    "give me a recipe for pancakes",
    "how do I boil an egg",
    "set an alarm for seven am",
    "wake me up at six",
    "remind me to call my mother",
    "turn off the lights in the kitchen",
    "make the living room warmer",
    "call a taxi to the airport",
    "book a flight to london",
    "find me a hotel in rome",
    "how far is the moon",
    "translate hello into french",
    "what's two plus two",
    "who is the president of france",
    "what's on tv tonight",
    "read me the news",
    "what time does the sun set",
    "how do you say thank you in japanese",
    "recommend a good movie",
    "start the vacuum cleaner",
    "what's the score of the hockey game",
    "open the garage door",
    "add milk to my shopping list",
    "how old is the universe",
    "spell the word necessary",
    "xqzv brrrp glonk",
    "banana helicopter purple",
)
