"""Generic requests no support line handles: a candidate implicit "none of these" class.

Experiment of round 2 (issue #2), not used by the matcher: it did not pay off, see
bench/README.md. To try it again, at commit 9f84f89 (where ``background.patch``, ``sweep.py``
and the flat matcher they apply to still are): ``cp bench/experiments/background_corpus.py
voicebot/background.py && git apply bench/experiments/background.patch``, then
``python -m bench.experiments.sweep BACKGROUND_WEIGHT=0 BACKGROUND_TOPIC_SHARE=1``.

Callers to a support number sometimes talk to it like a smart speaker ("will it rain tomorrow",
"play some jazz"). A config's phrases say only what is in scope, so such text can still land on
whichever intent shares a word with it. These sentences (hand-written for voicebot, English and
Swedish; a language the config does not use only ever pulls text of that language) are trained
as one extra class; the matcher drops every sentence close to the config's own texts first, so a
config that does have a weather or music intent keeps routing it.
"""

from __future__ import annotations

__all__ = ["BACKGROUND", "FUNCTION_WORDS", "TOPICS"]


def _fill(templates: tuple[str, ...], *slots: tuple[str, ...]) -> list[str]:
    """Each template with the slot values in turn (zipped cyclically, not the full product)."""
    out = []
    for t, template in enumerate(templates):
        for k in range(3):
            values = [s[(t * 3 + k) % len(s)] for s in slots]
            out.append(template.format(*values))
    return out


_EN_CITIES = ("Vienna", "Berlin", "Tokyo", "Madrid", "Oslo", "Chicago", "Lisbon", "Cairo")
_EN_MUSIC = ("jazz", "some rock", "classical music", "the beatles", "hip hop", "lo-fi beats")
_EN_TEAMS = ("the lakers", "arsenal", "real madrid", "the yankees", "liverpool", "the bulls")
_EN_TIMES = ("six thirty", "seven fifteen", "a quarter past eight", "noon", "ten pm", "five am")
_EN_ROOMS = ("bedroom", "attic", "hallway", "living room", "bathroom", "office")
_EN_DISHES = ("lasagna", "banana bread", "chicken curry", "tomato soup", "sushi", "brownies")

_EN: tuple[tuple[str, ...], ...] = (
    (  # weather
        *_fill(
            (
                "what's the weather like in {0}",
                "is it going to be sunny in {0} this weekend",
                "what's the temperature in {0} right now",
                "will I need an umbrella in {0}",
                "weather forecast for {0}",
            ),
            _EN_CITIES,
        ),
        "is it snowing outside",
        "how windy is it today",
        "do I need a jacket today",
        "what's the humidity",
        "will there be a thunderstorm tonight",
        "when will the rain stop",
        "what's the pollen count",
        "is it hot outside",
        "how many degrees is it",
        "what's the uv index today",
    ),
    (  # music and media
        *_fill(("play {0}", "put on {0} please", "shuffle {0}"), _EN_MUSIC),
        "skip this song",
        "next track",
        "pause the music",
        "louder please",
        "turn the volume down",
        "who sings this song",
        "what song is this",
        "play my workout playlist",
        "resume the podcast",
        "play the radio",
        "put on an audiobook",
        "like this song",
        "repeat this track",
        "play something relaxing",
        "what's the name of this album",
    ),
    (  # sports
        *_fill(
            (
                "did {0} win last night",
                "when do {0} play next",
                "what was the score in the {0} game",
            ),
            _EN_TEAMS,
        ),
        "who won the world cup",
        "how did the tennis final end",
        "latest formula one results",
        "who is top of the league",
        "when are the olympics",
        "show me the basketball scores",
    ),
    (  # recipes and cooking
        *_fill(
            (
                "how do I make {0}",
                "give me a recipe for {0}",
                "how long do I bake {0}",
            ),
            _EN_DISHES,
        ),
        "what can I cook with eggs and spinach",
        "how many grams in a cup of flour",
        "convert tablespoons to millilitres",
        "what temperature should I roast a chicken at",
        "is it safe to eat raw cookie dough",
        "what wine goes with salmon",
        "suggest something for dinner",
        "how long to boil pasta",
    ),
    (  # jokes, chit-chat and the assistant itself
        "tell me something funny",
        "do you know any good jokes",
        "make me laugh",
        "tell me a riddle",
        "tell me a bedtime story",
        "sing happy birthday",
        "what's your favourite colour",
        "do you like cats",
        "are you a robot",
        "what's your name",
        "how old are you",
        "do you dream",
        "what's the meaning of life",
        "i'm bored",
        "good morning how are you",
        "you're funny",
        "let's play a game",
        "flip a coin",
        "roll a dice",
        "pick a random number between one and ten",
        "rock paper scissors",
        "say something in pirate",
    ),
    (  # trivia and facts
        "how deep is the ocean",
        "who painted the mona lisa",
        "when did the titanic sink",
        "how many legs does a spider have",
        "what's the biggest animal in the world",
        "who invented the light bulb",
        "what's the population of china",
        "how fast can a cheetah run",
        "what is the speed of light",
        "who wrote romeo and juliet",
        "what's the longest river in the world",
        "how many planets are there",
        "why is the sky blue",
        "what does photosynthesis mean",
        "define the word serendipity",
        "what's the square root of one hundred forty four",
        "what's seventeen times six",
        "convert fifty miles to kilometres",
        "how many ounces in a pound",
        "what year did world war two end",
        "who discovered penicillin",
        "how do you spell restaurant",
        "what's the synonym of happy",
        "what day of the week was the first of january",
    ),
    (  # smart home
        *_fill(
            (
                "turn on the lights in the {0}",
                "dim the {0} lights",
                "set the {0} to twenty one degrees",
            ),
            _EN_ROOMS,
        ),
        "switch off all the lights",
        "lock the front door",
        "is the back door locked",
        "turn on the fan",
        "start the dishwasher",
        "turn on the coffee machine",
        "show the doorbell camera",
        "close the blinds",
        "turn the heating down",
        "switch the tv to channel four",
        "turn on the air conditioning",
    ),
    (  # alarms, timers, reminders, calendar
        *_fill(("set an alarm for {0}", "wake me at {0} tomorrow"), _EN_TIMES),
        "set a timer for ten minutes",
        "how much time is left on the timer",
        "cancel my alarm",
        "snooze",
        "stop the timer",
        "remind me to water the plants",
        "remind me to buy bread on the way home",
        "what's on my calendar today",
        "add a dentist appointment on friday",
        "when is my next meeting",
        "what's the date today",
        "what time is it in new york",
        "how many days until christmas",
    ),
    (  # news
        "what's the latest news",
        "any headlines this morning",
        "give me the sports news",
        "what's happening in the world",
        "news about the election",
        "tell me the business news",
    ),
    (  # travel, places, transport
        "how far is it to the beach",
        "directions to the nearest petrol station",
        "how long does it take to drive to the mountains",
        "find a coffee shop near me",
        "where is the closest pharmacy",
        "is there a good pizza place nearby",
        "what's the traffic like on the highway",
        "when does the next train to the city leave",
        "get me an uber",
        "what's the best time to visit japan",
        "what currency do they use in thailand",
        "what's the exchange rate from dollars to euros",
    ),
    (  # shopping lists and misc
        "put eggs on the grocery list",
        "what's on my shopping list",
        "read my text messages",
        "send a message to mum saying i'm late",
        "call grandma",
        "take a note",
        "what movies are playing tonight",
        "who stars in the new batman film",
        "recommend a book to read",
        "what should I watch on netflix",
        "find a yoga video",
        "how many steps did I walk today",
        "start a workout",
        "meditate with me",
        "what's the stock price of apple",
        "how much is bitcoin worth",
        "what's the moon phase tonight",
        "when is the next full moon",
        "what's my horoscope",
        "find my phone",
        "charge the car",
        "order more dog food",
    ),
)

_SV_CITIES = ("Paris", "Göteborg", "Malmö", "Berlin", "Umeå", "London", "Kiruna", "Rom")
_SV_MUSIC = ("jazz", "lite rock", "klassisk musik", "abba", "hiphop", "lugn musik")
_SV_TEAMS = ("djurgården", "aik", "malmö ff", "hammarby", "frölunda", "barcelona")
_SV_TIMES = ("halv sju", "sju", "kvart över åtta", "tolv", "tio i kväll", "fem")
_SV_ROOMS = ("sovrummet", "köket", "hallen", "vardagsrummet", "badrummet", "kontoret")
_SV_DISHES = ("lasagne", "kanelbullar", "köttbullar", "tomatsoppa", "pannkakor", "kladdkaka")

_SV: tuple[tuple[str, ...], ...] = (
    (  # väder
        *_fill(
            (
                "hur blir vädret i {0}",
                "blir det sol i {0} i helgen",
                "hur varmt är det i {0} just nu",
                "behöver jag paraply i {0}",
                "väderprognos för {0}",
            ),
            _SV_CITIES,
        ),
        "snöar det ute",
        "blåser det mycket idag",
        "behöver jag jacka idag",
        "hur hög är luftfuktigheten",
        "blir det åska i kväll",
        "när slutar det regna",
        "hur mycket pollen är det idag",
        "är det varmt ute",
        "hur många grader är det",
        "kommer det att regna i morgon",
    ),
    (  # musik och media
        *_fill(("spela {0}", "sätt på {0} tack", "blanda {0}"), _SV_MUSIC),
        "hoppa över den här låten",
        "nästa låt",
        "pausa musiken",
        "högre tack",
        "sänk volymen",
        "vem sjunger den här låten",
        "vad heter den här låten",
        "spela min träningslista",
        "fortsätt podden",
        "sätt på radion",
        "spela en ljudbok",
        "spela något lugnt",
        "upprepa låten",
    ),
    (  # sport
        *_fill(
            (
                "vann {0} i går",
                "när spelar {0} nästa gång",
                "hur gick matchen för {0}",
            ),
            _SV_TEAMS,
        ),
        "vem vann fotbolls vm",
        "hur slutade tennisfinalen",
        "senaste resultaten i formel ett",
        "vem leder allsvenskan",
        "när är olympiska spelen",
        "visa hockeyresultaten",
    ),
    (  # recept och matlagning
        *_fill(
            (
                "hur gör man {0}",
                "ge mig ett recept på {0}",
                "hur länge ska {0} stå i ugnen",
            ),
            _SV_DISHES,
        ),
        "vad kan jag laga med ägg och spenat",
        "hur många gram är en deciliter mjöl",
        "hur länge ska potatisen koka",
        "vilket vin passar till lax",
        "föreslå något till middag",
        "hur länge kokar man pasta",
        "hur kokar man ett löskokt ägg",
    ),
    (  # skämt och småprat
        "säg något roligt",
        "kan du något bra skämt",
        "få mig att skratta",
        "berätta en gåta",
        "berätta en godnattsaga",
        "sjung ja må han leva",
        "vad är din favoritfärg",
        "gillar du katter",
        "är du en robot",
        "vad heter du",
        "hur gammal är du",
        "drömmer du",
        "vad är meningen med livet",
        "jag har tråkigt",
        "god morgon hur mår du",
        "du är rolig",
        "ska vi spela ett spel",
        "singla slant",
        "slå en tärning",
        "välj ett tal mellan ett och tio",
        "sten sax påse",
    ),
    (  # fakta och kunskap
        "hur djupt är havet",
        "vem målade mona lisa",
        "när sjönk titanic",
        "hur många ben har en spindel",
        "vilket är världens största djur",
        "vem uppfann glödlampan",
        "hur många bor i kina",
        "hur snabbt springer en gepard",
        "vad är ljusets hastighet",
        "vem skrev romeo och julia",
        "vilken är världens längsta flod",
        "hur många planeter finns det",
        "varför är himlen blå",
        "vad betyder fotosyntes",
        "vad är huvudstaden i kanada",
        "vad är roten ur hundra fyrtiofyra",
        "vad är sjutton gånger sex",
        "hur många kilometer är fem mil",
        "när tog andra världskriget slut",
        "vem upptäckte penicillinet",
        "hur stavar man restaurang",
        "vad är en synonym till glad",
        "hur högt är kebnekaise",
        "vem är sveriges statsminister",
    ),
    (  # smarta hemmet
        *_fill(
            (
                "tänd lampan i {0}",
                "dämpa belysningen i {0}",
                "sätt värmen i {0} på tjugoen grader",
            ),
            _SV_ROOMS,
        ),
        "släck alla lampor",
        "lås ytterdörren",
        "är altandörren låst",
        "sätt på fläkten",
        "starta diskmaskinen",
        "sätt på kaffebryggaren",
        "visa kameran vid dörren",
        "dra ner persiennerna",
        "sänk värmen",
        "byt till kanal fyra på tv:n",
        "starta robotdammsugaren",
    ),
    (  # larm, timer, påminnelser, kalender
        *_fill(("ställ ett alarm på {0}", "väck mig klockan {0} i morgon"), _SV_TIMES),
        "sätt en timer på tio minuter",
        "hur lång tid är kvar på timern",
        "stäng av väckarklockan",
        "snooza",
        "stoppa timern",
        "påminn mig om att vattna blommorna",
        "påminn mig om att köpa bröd på vägen hem",
        "vad har jag i kalendern i dag",
        "lägg in tandläkartid på fredag",
        "när är mitt nästa möte",
        "vilket datum är det i dag",
        "vad är klockan i new york",
        "hur många dagar är det kvar till jul",
    ),
    (  # nyheter
        "vad är det senaste nyheterna",
        "läs upp dagens rubriker",
        "sportnyheter tack",
        "vad händer i världen",
        "nyheter om valet",
        "vad säger ekonominyheterna",
    ),
    (  # resor och platser
        "hur långt är det till stranden",
        "vägbeskrivning till närmaste mack",
        "hur lång tid tar det att köra till fjällen",
        "hitta ett kafé i närheten",
        "var ligger närmaste apotek",
        "finns det någon bra pizzeria här",
        "hur är trafiken på motorvägen",
        "när går nästa tåg till stan",
        "ring en taxi",
        "när är bästa tiden att resa till japan",
        "vilken valuta har de i thailand",
        "vad är kursen för euro i dag",
    ),
    (  # inköpslista och övrigt
        "lägg till ägg på inköpslistan",
        "vad står på min inköpslista",
        "läs mina sms",
        "skicka ett meddelande till mamma att jag blir sen",
        "ring mormor",
        "anteckna det här",
        "vilka filmer går på bio i kväll",
        "vem spelar i den nya batmanfilmen",
        "tipsa om en bok",
        "vad ska jag titta på i kväll",
        "hitta ett yogapass",
        "hur många steg har jag gått i dag",
        "starta ett träningspass",
        "vad kostar en aktie i volvo",
        "hur mycket är bitcoin värt",
        "när är det fullmåne",
        "vad säger mitt horoskop",
        "hitta min telefon",
    ),
)

TOPICS: tuple[tuple[str, ...], ...] = (*_EN, *_SV)  # one topic: dropped or kept together
BACKGROUND: tuple[str, ...] = tuple(dict.fromkeys(s for topic in TOPICS for s in topic))

# Words that say nothing about a topic: a background sentence is dropped when it shares any
# other word with the config (see voicebot.matching.matcher), so these must not count.
FUNCTION_WORDS = frozenset(
    """
    a an the and or but if of to in on at for from with by about into over after before up down
    out off is are was were be been am do does did have has had will would can could should shall
    may might must i me my mine you your yours he him his she her it its we us our they them their
    this that these those there here what whats which who whom whose when where why how not no
    yes please some any all just so very too also than then now today tomorrow tonight right
    im its dont cant wont id ive ill youre thats theres lets let get got give go going want like
    one two ten
    och eller men om av till i på vid för från med är var vara blev bli har hade ha kan kunde ska
    skulle vill ville måste jag mig min mitt mina du dig din ditt dina han honom hans hon henne
    hennes det den de dem deras vi oss vår vårt våra ni er ert era vad vilken vilket vilka vem
    när var varför hur inte nej ja tack någon något några alla bara så mycket också än nu idag
    dag morgon kväll här där ett en att som efter innan upp ner ut
    """.split()  # noqa: SIM905
)
