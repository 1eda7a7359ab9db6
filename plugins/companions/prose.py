"""The ``nl`` offline source: varied, grammatical general-English paragraphs, generated from the seed.

Written by the project (no third-party prose): ten kinds of everyday writing, each a small grammar of
sentence frames filled from word lists and kept consistent within a document (one town, one person, one
subject): town profiles, short biographies, local news reports, reviews, letters, opinion pieces, travel
diaries, practical instructions, nature notes and explanations of how everyday things work. People and
places are fictional, built from syllables. Each document is one to three paragraphs on one subject.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .textgen import (
    SURNAMES,
    article,
    capitalise,
    number_word,
    ordinal,
    person_name,
    place_name,
    region_name,
    syllable,
)

_SHE = ("Ada", "Alice", "Anna", "Beatrice", "Carmen", "Clara", "Dora", "Edith", "Elena", "Esther", "Frances",
        "Grace", "Hana", "Ines", "Ivy", "Julia", "Karin", "Lena", "Maeve", "Maria", "Mina", "Nadia", "Nora", "Olive",
        "Priya", "Rosa", "Ruth", "Sara", "Tessa", "Uma", "Vera", "Zara", "Iris", "Ottilie")
_HE = ("Alan", "Amir", "Arthur", "Ben", "Daniel", "Emil", "Felix", "Gabriel", "Harold", "Isaac", "Jonah", "Leo",
       "Lucas", "Marcus", "Nathan", "Oscar", "Pablo", "Quentin", "Samuel", "Simon", "Theo", "Victor", "Walter",
       "Yusuf", "Hugo", "Malik")
_THEY = ("Kai", "Wren", "Robin", "Sasha", "Jules", "Morgan")


@dataclass(frozen=True)
class Person:
    first: str
    last: str
    subj: str
    obj: str
    poss: str
    verb_s: bool  # "she walks" (True) versus "they walk" (False)

    @property
    def full(self) -> str:
        return f"{self.first} {self.last}"

    def v(self, singular: str, plural: str) -> str:
        return singular if self.verb_s else plural


def make_person(rng: random.Random) -> Person:
    roll = rng.random()
    last = rng.choice(SURNAMES)
    if roll < 0.45:
        return Person(rng.choice(_SHE), last, "she", "her", "her", True)
    if roll < 0.9:
        return Person(rng.choice(_HE), last, "he", "him", "his", True)
    return Person(rng.choice(_THEY), last, "they", "them", "their", False)


def _sentences(rng: random.Random, frames: list[Callable[[], str]], low: int, high: int) -> str:
    """``low``-``high`` of the frames, in a random order, each a capitalised sentence ending with a full stop."""
    chosen = rng.sample(frames, min(len(frames), rng.randint(low, high)))
    return " ".join(capitalise(frame()) + "." for frame in chosen)


# ---------------------------------------------------------------------------------------------------------
# word lists
# ---------------------------------------------------------------------------------------------------------
TOWN_KINDS = ("market town", "fishing village", "river port", "hill town", "railway town", "university town",
              "mill town", "coastal resort", "farming village", "cathedral city")
GEOGRAPHY = ("on the northern bank of the river {river}", "at the foot of the {hills} Hills",
             "on a narrow bay facing the open sea", "where two old trade roads meet",
             "in a broad valley of orchards and pasture", "on a low ridge above the marshes",
             "beside a long freshwater lake", "at the edge of a wide heath", "on the estuary of the {river}")
INDUSTRIES = ("wool", "timber", "pottery", "paper", "glass", "boat building", "cheese", "brewing", "salt",
              "printing", "clockmaking", "rope", "leather", "tin mining", "fruit growing", "textiles")
LANDMARKS = ("a covered market hall", "a stone bridge with seven arches", "a ruined abbey",
             "a lighthouse painted in red and white bands", "a small museum of local history",
             "a clock tower in the main square", "a public garden laid out around a pond", "an old windmill",
             "a row of timber-framed houses", "a concert hall built by public subscription",
             "a railway station from the 1860s", "a library that was once a grain store")
SEASONS = ("spring", "summer", "autumn", "winter")
WEATHER = ("mild and wet", "cool and windy", "warm and dry", "often foggy", "bright but cold",
           "changeable", "humid in the late summer", "snowy in the hills")
OCCUPATIONS = ("teacher", "carpenter", "nurse", "baker", "engineer", "librarian", "farmer", "doctor",
               "architect", "journalist", "gardener", "pharmacist", "tailor", "translator", "surveyor",
               "postal worker", "watchmaker", "chemist", "musician", "shopkeeper")
FIELDS = ("botany", "bridge design", "local history", "children's education", "public health", "astronomy",
          "the study of rivers", "furniture making", "printing", "urban planning", "soil science", "choral music",
          "map making", "bird migration", "food preservation", "weather recording")
ACHIEVEMENTS = ("founded a lending library for the district", "designed a footbridge that still carries traffic",
                "kept daily weather records for forty years", "wrote a guide to the wild flowers of the region",
                "organised the first evening classes for adult workers",
                "set up a cooperative that bought seed and tools in bulk",
                "restored the parish organ with volunteers", "mapped every footpath in the county",
                "started a choir that toured several countries", "ran a clinic that treated patients free of charge",
                "trained a generation of apprentices", "published a small newspaper for more than a decade")
COUNCIL_ACTIONS = (("close the high street to cars on Saturdays", "traffic"),
                   ("build a new swimming pool next to the school", "the pool"),
                   ("plant two hundred trees along the river path", "the trees"),
                   ("extend the library's opening hours", "the library"),
                   ("repair the harbour wall before winter", "the harbour wall"),
                   ("introduce a weekly night bus to the city", "the bus"),
                   ("turn the empty fire station into workshops", "the workshops"),
                   ("ban bonfires in the town's allotments", "the ban"),
                   ("install solar panels on the town hall roof", "the panels"),
                   ("reopen the public toilets in the park", "the toilets"))
REVIEW_SUBJECTS = (  # kind, (noun, plural?) pairs that can be praised or criticised, what one does there
    ("restaurant", (("the food", False), ("the menu", False), ("the desserts", True), ("the wine list", False)), "a meal"),
    ("hotel", (("the rooms", True), ("the breakfast", False), ("the beds", True), ("the bar", False)), "a stay"),
    ("café", (("the coffee", False), ("the cakes", True), ("the soup", False), ("the sandwiches", True)), "a visit"),
    ("bakery", (("the bread", False), ("the pastries", True), ("the pies", True), ("the coffee", False)), "a visit"),
    ("museum", (("the collection", False), ("the displays", True), ("the guided tour", False),
                ("the audio guide", False)), "a visit"),
    ("bookshop", (("the selection", False), ("the children's section", False), ("the reading corner", False),
                  ("the staff recommendations", True)), "a visit"),
    ("guest house", (("the rooms", True), ("the garden", False), ("the breakfast", False), ("the views", True)), "a stay"),
)
GOOD_ADJ = ("excellent", "very good", "better than I expected", "consistently good", "a real pleasure",
            "first-rate", "generous", "well thought out")
BAD_ADJ = ("disappointing", "uneven", "rather ordinary", "not up to the same standard", "a letdown",
           "overpriced")
OPINION_TOPICS = (
    ("towns should pay for free public transport", "fares", "buses and trams"),
    ("children should learn to cook at school", "cookery lessons", "the school day"),
    ("offices should allow a four-day working week", "shorter weeks", "the workplace"),
    ("every neighbourhood needs a public library", "libraries", "local services"),
    ("shops should be closed on Sundays", "Sunday trading", "high streets"),
    ("cities should reserve more streets for cyclists", "cycle lanes", "city streets"),
    ("homework should be limited in primary schools", "homework", "family life"),
    ("museums should be free to enter", "admission charges", "museums"),
    ("gardens should be left partly wild", "wild gardens", "wildlife"),
    ("people should repair things rather than replace them", "repair", "household budgets"),
)
BIRDS = ("blackbird", "wren", "heron", "swallow", "robin", "curlew", "kingfisher", "thrush", "jay", "owl",
         "lapwing", "goldfinch")
PLANTS = ("hawthorn", "bluebells", "wild garlic", "cow parsley", "heather", "oak", "willow", "primroses",
          "foxgloves", "bracken", "elder", "birch")
TASKS = (
    ("repot a house plant", ("water the plant a day before", "choose a pot one size larger with a drainage hole",
                             "tip the plant out gently while supporting the stem",
                             "loosen the outer roots with your fingers",
                             "set it at the same depth in fresh compost", "water it well and keep it out of direct sun for a week")),
    ("clean a bicycle chain", ("shift onto the smallest rear sprocket", "wipe the chain with a dry rag",
                               "brush degreaser into the links", "rinse it with a little warm water",
                               "let it dry completely", "add one drop of oil to each roller and wipe off the excess")),
    ("make a pot of tea", ("fill the kettle with fresh cold water", "warm the pot with a little hot water",
                           "add one spoonful of leaves for each cup", "pour on water just off the boil",
                           "let it stand for three to five minutes", "stir once and pour through a strainer")),
    ("paint a wooden door", ("take off the handles and hinges if you can", "sand the surface lightly",
                             "wipe away the dust with a damp cloth", "apply a thin coat of primer",
                             "paint the panels first and the frame last", "leave it to dry before a second coat")),
    ("plant a tree", ("dig a hole twice as wide as the root ball", "loosen the soil at the bottom",
                      "set the tree so that the root flare sits at ground level", "fill in around the roots",
                      "firm the soil with your heel", "water generously and add a ring of mulch")),
    ("sharpen a kitchen knife", ("soak the whetstone for ten minutes", "hold the blade at a shallow, steady angle",
                                 "push it across the coarse side in smooth strokes", "repeat on the other side",
                                 "finish on the fine side", "rinse and dry the blade")),
    ("pack for a long walk", ("check the weather forecast", "lay out everything on the floor first",
                              "put heavy items close to your back", "carry more water than you expect to need",
                              "add a warm layer even in summer", "leave a note of your route with someone")),
    ("bake a simple loaf", ("mix flour, salt, yeast and warm water", "knead the dough for ten minutes",
                            "leave it covered until it has doubled in size", "shape it gently into a round",
                            "let it rise again for half an hour", "bake it in a hot oven until it sounds hollow")),
)
EXPLANATIONS = (
    ("a bicycle stays upright", (
        "a moving bicycle is steadied mostly by the rider, who steers small amounts into any lean",
        "the shape of the front fork makes the wheel turn slightly towards the side the bike leans to",
        "this steering moves the wheels back under the centre of mass",
        "at walking pace the corrections must be large, which is why slow riding feels wobbly",
        "at higher speeds the same effect needs only tiny movements of the handlebars")),
    ("bread rises", (
        "yeast is a living fungus that feeds on the sugars in flour",
        "as it feeds it gives off carbon dioxide",
        "kneading builds a stretchy network of gluten that traps the gas in small pockets",
        "warmth speeds the yeast up, while cold slows it down",
        "in the oven the gas expands once more before the crust sets and fixes the shape")),
    ("a refrigerator keeps food cold", (
        "a refrigerator moves heat from the inside of the cabinet to the room outside",
        "a fluid called a refrigerant evaporates in pipes inside the cabinet and absorbs heat as it does so",
        "a compressor then squeezes the vapour, which makes it hot",
        "the hot vapour gives up its heat through the coils at the back and turns back into a liquid",
        "the cycle repeats for as long as the thermostat asks for cooling")),
    ("the seasons change", (
        "the Earth's axis is tilted compared with its path around the Sun",
        "for part of the year one hemisphere leans towards the Sun and receives more direct light",
        "days there are longer and the sunlight arrives at a steeper angle",
        "six months later the same hemisphere leans away, and the days shorten",
        "the distance to the Sun changes a little during the year, but that is not what causes the seasons")),
    ("a compost heap works", (
        "bacteria and fungi break down garden and kitchen waste into a dark, crumbly material",
        "they need air, moisture and a mixture of green and brown material",
        "green waste such as grass cuttings supplies nitrogen, while dry leaves and card supply carbon",
        "a busy heap can become warm in the middle as the microbes work",
        "turning the heap lets in air and speeds the whole process up")),
    ("a rainbow forms", (
        "sunlight is a mixture of colours",
        "when it enters a raindrop it bends, and each colour bends by a slightly different amount",
        "the light reflects off the back of the drop and bends again as it leaves",
        "the colours are spread into a band, with red on the outside of the arc",
        "you only see a rainbow when the Sun is behind you and the rain is in front of you")),
    ("a lock and key work", (
        "a common door lock contains a row of small pins of different lengths",
        "springs push the pins down into the cylinder and stop it from turning",
        "the cuts on the correct key lift every pin to exactly the right height",
        "when the gaps between the pins line up with the edge of the cylinder, it can turn",
        "a wrong key leaves at least one pin blocking the way")),
    ("a kettle switches itself off", (
        "many kettles have a small disc made of two metals bonded together",
        "the two metals expand by different amounts when they are heated",
        "steam from the boiling water is led past the disc",
        "the disc suddenly snaps into a new shape and pushes the switch open",
        "as it cools it slowly returns to its old shape, ready for the next time")),
)
DIARY_ACTIVITIES = ("walked along the cliff path", "hired bicycles and followed the canal", "took the early ferry",
                    "climbed to the old fort", "spent the morning in the covered market", "swam in the cold lake",
                    "visited a small gallery of local painting", "caught a slow train up the valley",
                    "sat for an hour in the cathedral", "joined a guided walk through the marshes",
                    "picked apples at a farm outside town", "watched the boats come in")
FOODS = ("fish soup", "warm bread with butter", "a plate of grilled vegetables", "lentil stew", "apple cake",
         "fresh cheese and tomatoes", "roast potatoes with rosemary", "a bowl of noodles", "pancakes with honey",
         "a slice of onion tart")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


# ---------------------------------------------------------------------------------------------------------
# genres: each returns one document (one to three paragraphs)
# ---------------------------------------------------------------------------------------------------------
def town_profile(rng: random.Random) -> str:
    town, other, region = place_name(rng), place_name(rng), region_name(rng)
    river = capitalise(syllable(rng))
    geo = rng.choice(GEOGRAPHY).format(river=river, hills=place_name(rng))
    kind, km = rng.choice(TOWN_KINDS), rng.randint(6, 140)
    pop = rng.randrange(300, 4_000, 10) if "village" in kind else rng.randrange(4_000, 120_000, 10)
    settlement = "village" if "village" in kind else "city" if "city" in kind else "town"
    industries = rng.sample(INDUSTRIES, 3)
    landmarks = rng.sample(LANDMARKS, 3)
    century = rng.choice(("twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth"))
    first = (f"{town} is {article(kind)} in {region}, {geo}. It lies about {km} kilometres from {other} and had "
             f"a population of {pop:,} at the most recent count.")
    history = [
        lambda: f"the {settlement} grew up around a crossing point in the {century} century",
        lambda: f"for several hundred years its wealth came from {industries[0]}",
        lambda: f"in the nineteenth century the arrival of the railway brought new trade in {industries[1]}",
        lambda: "many of the older streets still follow the line of the medieval walls",
        lambda: f"a fire in {rng.randint(1650, 1890)} destroyed much of the centre, which was rebuilt in brick",
        lambda: f"the {settlement}'s charter, granted in {rng.randint(1150, 1600)}, allowed it to hold a weekly market",
    ]
    today = [
        lambda: f"today the largest employers are a hospital, two schools and a number of small firms working in {industries[2]}",
        lambda: f"visitors usually come to see {landmarks[0]} and {landmarks[1]}",
        lambda: f"the climate is {rng.choice(WEATHER)}, and {rng.choice(SEASONS)} is the busiest time of year",
        lambda: f"a market is held every {rng.choice(WEEKDAYS)} in the main square",
        lambda: f"{landmarks[2]} was recently restored with money raised by residents",
        lambda: "the local football team plays in a small ground beside the river",
        lambda: f"buses run to {other} roughly every {rng.choice(('twenty minutes', 'half hour', 'hour'))}",
    ]
    paragraphs = [first + " " + _sentences(rng, history, 2, 4)]
    if rng.random() < 0.8:
        paragraphs.append(_sentences(rng, today, 2, 4))
    return "\n\n".join(paragraphs)


def biography(rng: random.Random) -> str:
    p = make_person(rng)
    town, city = place_name(rng), place_name(rng)
    born = rng.randint(1820, 1975)
    jobs = rng.sample(OCCUPATIONS, 3)
    field = rng.choice(FIELDS)
    achievements = rng.sample(ACHIEVEMENTS, 2)
    siblings = rng.randint(2, 7)
    lines = [
        f"{p.full} was born in {town} in {born}, the {ordinal(rng.randint(1, siblings))} of {number_word(siblings)} "
        f"children of {article(jobs[0])} and {article(jobs[1])}.",
        f"{capitalise(p.subj)} left school at {rng.randint(14, 18)} and worked for a time as {article(jobs[2])} "
        f"before moving to {city}, where {p.subj} became interested in {field}.",
    ]
    middle = [
        lambda: f"over the following years {p.subj} {achievements[0]}",
        lambda: f"colleagues remembered {p.obj} as patient, exact and rather shy in company",
        lambda: f"in {born + rng.randint(25, 45)} {p.subj} {achievements[1]}",
        lambda: f"{p.poss} notebooks, now kept in the {city} archive, fill more than {rng.randint(3, 60)} volumes",
        lambda: f"{p.subj} {p.v('was', 'were')} offered a university post but preferred to stay close to home",
        lambda: f"{p.subj} married {person_name(rng)} in {born + rng.randint(20, 35)}, and they had "
                + rng.choice(("no children", "one child", "two children", "three children", "four children")),
    ]
    lines.append(_sentences(rng, middle, 2, 4))
    if born < 1945:
        lines.append(f"{p.first} {p.last} died in {city} in {born + rng.randint(58, 96)}. A street near the "
                     f"station in {town} now bears {p.poss} name.")
    else:
        lines.append(f"{capitalise(p.subj)} still {p.v('lives', 'live')} in {town} and {p.v('gives', 'give')} "
                     f"occasional talks about {field}.")
    return " ".join(lines)


def news_report(rng: random.Random) -> str:
    town = place_name(rng)
    action, thing = rng.choice(COUNCIL_ACTIONS)
    yes, no = rng.randint(6, 14), rng.randint(1, 8)
    cost = rng.randrange(20, 2_000, 5) * 1000
    a, b = make_person(rng), make_person(rng)
    day = rng.choice(WEEKDAYS)
    month = rng.choice(MONTHS)
    first = (f"Councillors in {town} voted {yes} to {no} on {day} to {action}. The plan will cost about "
             f"£{cost:,} and work is expected to begin in {month}.")
    quotes = [
        lambda: f"\"This is something people have been asking for since I was first elected,\" said councillor "
                f"{a.full}, who proposed the motion",
        lambda: f"\"Nobody asked the people who will actually live with the consequences,\" said {b.full}, who "
                f"runs a shop nearby",
        lambda: f"a public meeting in the church hall last month drew more than {rng.randint(40, 400)} residents",
        lambda: "opponents argued that the money would be better spent on road repairs",
        lambda: f"supporters said {thing} would bring more visitors into the centre",
        lambda: f"the council said it would publish a full timetable before the end of {month}",
        lambda: f"a petition against the decision has already gathered {rng.randint(100, 3000):,} signatures",
        lambda: f"the scheme will be reviewed after {number_word(rng.randint(2, 12))} months",
    ]
    return first + "\n\n" + _sentences(rng, quotes, 3, 5)


def review(rng: random.Random) -> str:
    kind, nouns, visit = rng.choice(REVIEW_SUBJECTS)
    name = f"The {rng.choice(('Old', 'Blue', 'Green', 'Little', 'Red', 'Golden', 'Quiet', 'Corner'))} " \
           f"{rng.choice(('Lantern', 'Anchor', 'Orchard', 'Heron', 'Kettle', 'Mill', 'Fox', 'Library', 'Table'))}"
    town = place_name(rng)
    stars = rng.randint(1, 5)
    (n1, p1), (n2, p2), (n3, p3) = rng.sample(nouns, 3)
    good, bad = rng.sample(GOOD_ADJ, 2), rng.sample(BAD_ADJ, 2)

    def be(plural: bool) -> str:
        return "were" if plural else "was"

    openers = [
        f"{name} opened in {town} {rng.choice(('last spring', 'two years ago', 'in the autumn', 'a few months ago'))}, "
        f"and it has quickly become one of the busiest {kind}s in the area.",
        f"I had heard mixed reports about {name}, the {kind} on the corner of the square in {town}, so I went "
        f"along on a wet {rng.choice(WEEKDAYS)} to see for myself.",
        f"{name} is a small, family-run {kind} a few minutes' walk from the station in {town}.",
    ]
    praise = [
        lambda: f"{n1} {be(p1)} {good[0]}",
        lambda: f"{n2} {be(p2)} {good[1]}",
        lambda: f"the staff were {rng.choice(('friendly', 'attentive', 'cheerful', 'calm'))} even when it was busy",
        lambda: f"prices are {rng.choice(('fair', 'reasonable', 'modest'))} for what you get",
        lambda: "the building itself is lovely, with tall windows and plenty of light",
    ]
    complaints = [
        lambda: f"{n3} {be(p3)} {bad[0]}",
        lambda: "service was slow at busy times, and we waited a long time to pay",
        lambda: "it can be hard to find a quiet corner at the weekend",
        lambda: "the music was too loud for conversation",
    ]
    n_bad = {1: 3, 2: 2, 3: 1, 4: 1, 5: 0}[stars]
    n_good = {1: 1, 2: 1, 3: 2, 4: 3, 5: 3}[stars]
    middle = rng.sample(praise, n_good) + rng.sample(complaints, n_bad)
    rng.shuffle(middle)
    verdict = {1: "I would not go back.", 2: "It has promise, but it is not there yet.",
               3: "A pleasant place, if not a special one.", 4: "I will certainly return.",
               5: f"It is hard to imagine {article('better ' + visit.split()[-1])} in {town}."}[stars]
    return f"{rng.choice(openers)} {_sentences(rng, middle, len(middle), len(middle))} {verdict} Rating: {stars} out of 5."


def letter(rng: random.Random) -> str:
    writer, reader = make_person(rng), make_person(rng)
    town = place_name(rng)
    month = rng.choice(MONTHS)
    topics = [
        lambda: f"thank you for the parcel, which arrived on {rng.choice(WEEKDAYS)} in perfect condition",
        lambda: f"the garden is finally recovering after the {rng.choice(('storms', 'dry spell', 'frosts', 'floods'))}",
        lambda: "we have started repainting the kitchen, although progress is slow",
        lambda: f"I have joined a walking group that meets every {rng.choice(WEEKDAYS)} morning",
        lambda: f"the new bus route means I can get to {place_name(rng)} in under an hour",
        lambda: "our neighbour's dog has learned to open the gate, which causes a certain amount of excitement",
        lambda: "I am reading a long novel about a family of ship builders and enjoying it more than I expected",
        lambda: f"the school has asked me to help with the library on {rng.choice(WEEKDAYS)}s",
    ]
    plans = [
        f"Would you be able to visit in {month}? The spare room is ready whenever you are.",
        f"Let me know when you are next passing through {town}, and we can have lunch at the market.",
        "Please give my best wishes to everyone at home, and write when you have a moment.",
    ]
    body = _sentences(rng, topics, 3, 5)
    return (f"Dear {reader.first},\n\n{body} {rng.choice(plans)}\n\n"
            f"{rng.choice(('With love', 'Best wishes', 'Warm regards', 'Yours ever'))},\n{writer.first}")


def opinion(rng: random.Random) -> str:
    claim, short, area = rng.choice(OPINION_TOPICS)
    agree = rng.random() < 0.6
    reasons_for = [
        "it would make daily life simpler for many families",
        "the evidence from places that have tried it is encouraging",
        "the cost is small compared with the benefits over time",
        "it would give people who are often overlooked a fairer chance",
        "it would encourage habits that are good for health",
    ]
    reasons_against = [
        "the money would have to come from other services",
        "what works in one place does not always work in another",
        "people should be free to make their own choices",
        "the change would fall hardest on small businesses",
    ]
    stance = "I think they are right" if agree else "I am not convinced"
    main = rng.sample(reasons_for if agree else reasons_against, 2)
    counter = rng.choice(reasons_against if agree else reasons_for)
    return (f"Many people now argue that {claim}. {stance}. First, {main[0]}. Second, {main[1]}.\n\n"
            f"It is fair to say that {counter}, and any debate about {short} should take that seriously. "
            f"Still, {'the case for change is stronger' if agree else 'the case for caution is stronger'}, and "
            f"{'we should start with a careful trial' if agree else 'we should look at the effect on ' + area + ' first'}.")


def travel_diary(rng: random.Random) -> str:
    place = place_name(rng)
    days = rng.randint(2, 4)
    entries = []
    activities = rng.sample(DIARY_ACTIVITIES, days * 2)
    for d in range(days):
        weather = rng.choice(("Rain all morning", "Clear skies", "A cold wind", "Thick fog at first",
                              "Warm sunshine", "Showers and bright spells"))
        food = rng.choice(FOODS)
        entries.append(f"Day {d + 1}. {weather}. We {activities[2 * d]}, then {activities[2 * d + 1]}. "
                       f"Supper was {food} at {article(rng.choice(('small inn', 'harbour café', 'family kitchen', 'station buffet')))} "
                       f"{rng.choice(('near the bridge', 'on the square', 'by the water', 'up the hill'))}.")
    return f"Notes from a week in {place}.\n\n" + "\n".join(entries)


def instructions(rng: random.Random) -> str:
    task, steps = rng.choice(TASKS)
    chosen = list(steps)
    if rng.random() < 0.5:
        chosen = chosen[: rng.randint(4, len(chosen))]
    connectives = ["First", "Next", "Then", "After that", "Now", "Finally"]
    sentences = []
    for i, step in enumerate(chosen):
        word = connectives[min(i, len(connectives) - 2)] if i < len(chosen) - 1 else "Finally"
        sentences.append(f"{word}, {step}.")
    tip = rng.choice(("It takes less time than you might think.", "Do not rush the last step.",
                      "A second pair of hands helps.", "Keep an old towel nearby.",
                      "Most of the work is in the preparation."))
    return f"How to {task}. " + " ".join(sentences) + " " + tip


def nature_note(rng: random.Random) -> str:
    month = rng.choice(MONTHS)
    place = place_name(rng)
    birds, plants = rng.sample(BIRDS, 3), rng.sample(PLANTS, 2)
    frames = [
        lambda: f"in early {month} the path beside the water at {place} is quiet except for the {birds[0]}",
        lambda: f"{plants[0]} {rng.choice(('has begun to flower', 'is turning brown', 'covers the bank', 'is in full leaf'))} along the hedges",
        lambda: f"{article(birds[1])} was calling from the {rng.choice(('reeds', 'hedge', 'top of an old oak', 'far side of the field'))} for most of the morning",
        lambda: f"the ground was {rng.choice(('soft after rain', 'hard with frost', 'dry and cracked', 'covered in fallen leaves'))}",
        lambda: f"near the gate we found {plants[1]} that had not been there last year",
        lambda: f"by late afternoon the light had turned {rng.choice(('gold', 'grey', 'pale blue', 'copper'))}, and {article(birds[2])} crossed the field low and fast",
        lambda: "it is worth walking slowly here, because most of what is interesting is small",
    ]
    return _sentences(rng, frames, 4, 6)


def explanation(rng: random.Random) -> str:
    subject, facts = rng.choice(EXPLANATIONS)
    k = rng.randint(3, len(facts))
    body = ". ".join(capitalise(f) for f in facts[:k]) + "."
    lead = rng.choice((f"How {subject}.", f"Why {subject}: a short explanation.", f"Have you ever wondered how {subject}?",
                       f"A note on how {subject}."))
    tail = rng.choice(("", " Once you know this, it is hard to stop noticing it.", " The principle is simple, even if the details are not.",
                       " Engineers and cooks have relied on this for a very long time."))
    return f"{lead} {body}{tail}"


GENRES: tuple[Callable[[random.Random], str], ...] = (
    town_profile, biography, news_report, review, letter, opinion, travel_diary, instructions, nature_note,
    explanation,
)
WEIGHTS = (3, 3, 3, 2, 2, 2, 2, 1, 2, 1)


def english_prose_documents(seed: int, offline: bool = True) -> Iterator[str]:
    """General-English documents of the ten genres above, in a seeded order, forever."""
    rng = random.Random(seed)
    while True:
        genre = rng.choices(GENRES, weights=WEIGHTS)[0]
        yield genre(rng)
