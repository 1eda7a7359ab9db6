"""The ``creative`` offline source: short stories, fables, poems and dialogue scenes, generated from the seed.

Written by the project (no third-party prose). Stories follow a simple arc (a character, a place, something
wanted, an obstacle, two attempts, help, an ending); fables end with a moral; poems are rhymed quatrains
built from rhyme families; scenes are short dialogues with stage directions. Characters and places are
fictional.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from .prose import make_person
from .textgen import article, capitalise, place_name

TRAITS = ("curious", "stubborn", "shy", "cheerful", "careful", "restless", "kind", "proud", "forgetful",
          "brave", "clever", "patient", "lonely", "hopeful")
ROLES = ("lighthouse keeper", "baker", "postwoman", "clockmaker", "ferryman", "schoolteacher", "beekeeper",
         "night watchman", "gardener", "fisher", "tailor", "librarian", "shepherd", "painter", "inventor")
SETTINGS = ("a village at the edge of a great forest", "a harbour town where the fog came in every evening",
            "a city of narrow bridges and crooked roofs", "a farm high in the hills",
            "an island with one road and one shop", "a mountain pass buried in snow for half the year",
            "a market town on the banks of a slow brown river", "a street of tall houses that leaned together")
WANTS = (("to find the bell that had gone missing from the tower", "the bell"),
         ("to win the spring baking contest", "the contest"),
         ("to mend the old boat before the summer fair", "the boat"),
         ("to see the northern lights just once", "the lights"),
         ("to find out who had been leaving apples on the doorstep", "the mystery"),
         ("to bring the lost goat home before dark", "the goat"),
         ("to finish the quilt before the first snow", "the quilt"),
         ("to teach the parrot a single polite word", "the parrot"),
         ("to send a letter to a friend across the sea", "the letter"),
         ("to plant a garden on the roof", "the garden"),
         ("to climb the hill where nobody went", "the hill"),
         ("to repair the clock that had stopped at midnight", "the clock"))
OBSTACLES = ("a storm that lasted three days", "a bridge that had washed away", "a rival who laughed at the idea",
             "a map with half the names rubbed out", "a key that would not turn",
             "a winter colder than anyone could remember", "a purse with only four coins in it",
             "a fear of the dark that had never quite gone away", "a ladder one rung too short",
             "a rule that nobody could explain")
HELPERS = ("an old woman who sold string", "a boy who knew every path", "a talkative crow",
           "a retired sailor with one boot", "a girl who collected keys", "a sleepy cat",
           "a travelling musician", "the miller's twins", "a stranger with a lantern")
ENDINGS = ("and from then on, whenever the wind blew from the east, {name} smiled and remembered",
           "and although nobody else ever quite believed the story, {name} did not mind",
           "and that evening the whole {place_kind} came out to see",
           "and {name} slept better that night than in a whole year",
           "and the next spring, {name} began something new",
           "and {name} kept the {token} on the windowsill for the rest of {poss} life")
TOKENS = ("small brass key", "blue feather", "smooth white stone", "folded map", "cracked teacup", "button")

ANIMALS = ("fox", "tortoise", "hare", "crow", "ant", "grasshopper", "mouse", "owl", "heron", "badger", "goat",
           "squirrel", "wolf", "lamb", "magpie", "frog", "bear", "otter")
FABLE_PLOTS = (
    ("boasted that it could cross the river without getting wet", "was carried downstream and had to be pulled out by",
     "Pride makes a poor bridge."),
    ("hid all the food it found and shared none", "could not remember where most of it was buried, and was fed by",
     "What is hoarded is often lost."),
    ("laughed at a slow neighbour", "arrived second after all, behind",
     "Steady work outlasts quick boasting."),
    ("promised to keep watch and fell asleep", "woke to find the gate open, and was forgiven by",
     "A promise is only as good as the keeping of it."),
    ("refused to ask for directions", "walked in circles until nightfall, and was guided home by",
     "There is no shame in asking the way."),
    ("copied every trick it saw", "fell into the pond, and was rescued by",
     "Be yourself; the others are taken."),
    ("would not help to mend the roof", "was the first to get wet when the rain came, and was sheltered by",
     "Shared work keeps a shared roof."),
)

RHYMES = (  # families of rhyming nouns (every line ends with "the NOUN" or "every NOUN")
    ("light", "night", "kite", "height", "flight"), ("sea", "tree", "key", "bee", "quay"),
    ("day", "way", "bay", "hay", "clay", "spray"), ("rain", "lane", "train", "plain", "chain", "grain"),
    ("stone", "bone", "throne", "cone", "phone"), ("hill", "mill", "sill", "quill", "till"),
    ("snow", "crow", "bow", "row", "glow"), ("door", "floor", "shore", "store", "oar"),
    ("moon", "spoon", "tune", "dune", "noon"), ("gate", "slate", "plate", "crate", "date"),
    ("well", "bell", "shell", "dell", "spell"), ("bread", "thread", "shed", "bed", "head"),
    ("fire", "wire", "spire", "choir", "briar"), ("road", "load", "toad", "code", "abode"),
    ("wall", "hall", "ball", "stall", "shawl"), ("year", "pier", "deer", "spear", "frontier"),
)
LINE_FRAMES = (
    "The {a} lies quiet by the {x}", "We walked together to the {x}", "And all the {b} flew past the {x}",
    "Beneath the {a} we found the {x}", "I counted {b} beside the {x}", "My {c} was waiting by the {x}",
    "The {b} went singing past the {x}", "She left her {c} upon the {x}", "He kept the {c} beneath the {x}",
    "The {a} is older than the {x}", "Come home, the {b} are near the {x}", "Slow {b} are drifting round the {x}",
    "The {c} remembers every {x}", "And no one saw us at the {x}", "Between the {a} and the {x}",
    "We waited, watching for the {x}", "Until the {b} had left the {x}", "A little {c} against the {x}",
)
POEM_A = ("river", "harbour", "orchard", "chapel", "valley", "garden", "meadow", "station", "kitchen", "moorland")
POEM_B = ("swallows", "lanterns", "cattle", "willows", "children", "sparrows", "bells", "boats", "clouds", "leaves")
POEM_C = ("letter", "coat", "lamp", "ring", "basket", "candle", "fiddle", "compass", "spoon", "scarf")

SCENE_PLACES = ("a railway platform at night", "a kitchen just before dawn", "the back room of a bookshop",
                "a rowing boat in the middle of a lake", "a hospital corridor", "a stall at a closing market",
                "the top of a lighthouse", "a bus shelter in the rain")
SCENE_LINES = (
    ("You're late.", "I know. The road was closed at the bridge."),
    ("Did you bring it?", "It's in my pocket. I nearly left it on the train."),
    ("We should go back.", "Not yet. Give it five more minutes."),
    ("Who told you?", "Nobody had to. I saw the lights were on."),
    ("Is it still raining?", "Worse than before. Stay a while."),
    ("I thought you'd forgotten.", "I never forget the important things. Only the small ones."),
    ("What if nobody comes?", "Then we'll have the whole place to ourselves."),
    ("Can you hear that?", "It's only the wind in the wires."),
    ("Why did you keep it all these years?", "Because I promised I would."),
    ("Tell me the truth.", "You won't like it."),
)
STAGE = ("{a} looks at the clock.", "{b} sets the bag down carefully.", "A long pause.", "Somewhere, a door bangs.",
         "They both laugh, a little too loudly.", "The lights flicker.", "{b} turns to the window.",
         "{a} folds the letter in half, then in half again.", "{b} sits down at last.")


def story(rng: random.Random) -> str:
    hero = make_person(rng)
    name, subj, poss = hero.first, hero.subj, hero.poss
    trait, role = rng.choice(TRAITS), rng.choice(ROLES)
    setting = rng.choice(SETTINGS)
    want, short = rng.choice(WANTS)
    obstacle, second_obstacle = rng.sample(OBSTACLES, 2)
    helper = rng.choice(HELPERS)
    town = place_name(rng)
    place_kind = rng.choice(("village", "town", "street", "island"))
    token = rng.choice(TOKENS)
    be = hero.v("was", "were")
    opening = rng.choice((
        f"Once, in {setting} called {town}, there lived {article(trait)} {role} named {name}.",
        f"In {town}, which was {setting}, everyone knew {name}, the {trait} {role}.",
        f"{name} had been the {role} of {town} for as long as anyone could remember, and {subj} {be} {trait} in "
        f"a way that people either loved or found tiresome.",
    ))
    wish = rng.choice((
        f"More than anything, {name} wanted {want}.",
        f"That year, {name} decided it was time {want}.",
        f"One {rng.choice(('morning', 'evening', 'winter', 'summer'))}, {name} made up {poss} mind {want}.",
    ))
    trouble = f"But there was {obstacle}, and after that {second_obstacle}."
    tries = [
        f"First {subj} tried on {poss} own, working late into the night, but it was no use.",
        f"Then {subj} asked the mayor, who only shook {rng.choice(('his', 'her'))} head and talked about the weather.",
        f"{capitalise(subj)} wrote a list of everything that might help, and crossed out every line.",
        f"{capitalise(subj)} went to the {rng.choice(('market', 'harbour', 'church', 'station'))} and asked everyone "
        f"{subj} met, but nobody knew.",
    ]
    chosen_tries = [tries[i] for i in sorted(rng.sample(range(len(tries)), 2))]
    dialogue = rng.choice((
        f"\"Why not try the old way?\" said {helper}. \"Nobody has for years, but that does not mean it won't work.\"",
        f"\"You are going about it backwards,\" said {helper}. \"Start at the end and walk towards the beginning.\"",
        f"\"I can help,\" said {helper}, \"if you will help me with something first.\"",
    ))
    resolution = rng.choice((
        f"So {name} did exactly that, and by the end of the week {short} was no longer a problem at all.",
        f"It took three more days and a great deal of patience, but in the end {short} turned out to be simpler "
        f"than anyone had thought.",
        f"{capitalise(subj)} laughed, because the answer had been in front of {hero.obj} the whole time.",
    ))
    ending = rng.choice(ENDINGS).format(name=name, place_kind=place_kind, token=token, poss=poss)
    return "\n\n".join((f"{opening} {wish} {trouble}", " ".join(chosen_tries),
                        f"{dialogue} {resolution}", capitalise(ending) + "."))


def fable(rng: random.Random) -> str:
    first, second = rng.sample(ANIMALS, 2)
    boast, fall, moral = rng.choice(FABLE_PLOTS)
    return (f"The {capitalise(first)} and the {capitalise(second)}\n\n"
            f"There was once {article(first)} that {boast}. The {second} said nothing and went on with its own "
            f"business. When the day came, the {first} {fall} the very {second} it had looked down on. "
            f"From then on the two of them {rng.choice(('were friends', 'shared the field', 'kept each other company', 'crossed the river together'))}."
            f"\n\nMoral: {moral}")


def poem(rng: random.Random) -> str:
    stanzas = []
    title = f"{capitalise(rng.choice(POEM_A))} {rng.choice(('Song', 'in Winter', 'at Evening', 'Remembered', 'by Night', 'Morning'))}"
    for _ in range(rng.randint(2, 4)):
        r1, r2 = rng.sample(RHYMES, 2)
        w1, w2 = rng.sample(r1, 2)
        v1, v2 = rng.sample(r2, 2)
        frames = rng.sample(LINE_FRAMES, 4)
        ends = (w1, v1, w2, v2) if rng.random() < 0.5 else (w1, w2, v1, v2)
        lines = [frame.format(a=rng.choice(POEM_A), b=rng.choice(POEM_B), c=rng.choice(POEM_C), x=end)
                 for frame, end in zip(frames, ends)]
        lines[-1] += "."
        lines[1] += ","
        stanzas.append("\n".join(lines))
    return title + "\n\n" + "\n\n".join(stanzas)


def scene(rng: random.Random) -> str:
    a, b = make_person(rng), make_person(rng)
    while b.first == a.first:
        b = make_person(rng)
    place = rng.choice(SCENE_PLACES)
    exchanges = rng.sample(SCENE_LINES, rng.randint(3, 5))
    lines = [f"Scene: {place}. {a.first.upper()} and {b.first.upper()}."]
    for i, (line, reply) in enumerate(exchanges):
        lines.append(f"{a.first.upper()}: {line}")
        lines.append(f"{b.first.upper()}: {reply}")
        if rng.random() < 0.4:
            lines.append("(" + rng.choice(STAGE).format(a=a.first, b=b.first) + ")")
    lines.append(rng.choice(("(Blackout.)", "(They leave together.)", "(The train arrives.)", "(Curtain.)")))
    return "\n".join(lines)


GENRES: tuple[Callable[[random.Random], str], ...] = (story, fable, poem, scene)
WEIGHTS = (5, 2, 3, 2)


def creative_documents(seed: int, offline: bool = True) -> Iterator[str]:
    """Stories, fables, poems and scenes in a seeded order, forever."""
    rng = random.Random(seed)
    while True:
        yield rng.choices(GENRES, weights=WEIGHTS)[0](rng)
