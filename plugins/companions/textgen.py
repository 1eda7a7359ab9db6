"""Small helpers shared by the procedural text generators (English grammar and fictional names).

Everything here is written by the project; names are assembled from syllables so that no generated text
describes a real person or place.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

_VOWEL_SOUND_EXCEPTIONS_AN = ("hour", "honest", "honour", "heir")
_VOWEL_SOUND_EXCEPTIONS_A = ("uni", "use", "usu", "eu", "one", "once", "ur", "uti")


def article(phrase: str) -> str:
    """``"a phrase"`` or ``"an phrase"`` by the sound of the first word (good enough for our vocabulary)."""
    word = phrase.lower()
    if word.startswith(_VOWEL_SOUND_EXCEPTIONS_AN):
        return f"an {phrase}"
    if word.startswith(_VOWEL_SOUND_EXCEPTIONS_A):
        return f"a {phrase}"
    if word[:1] in "aeiou" or (word[:1].isdigit() and word.startswith(("8", "11", "18"))):
        return f"an {phrase}"
    return f"a {phrase}"


def capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def ordinal(n: int) -> str:
    words = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", 6: "sixth", 7: "seventh",
             8: "eighth", 9: "ninth", 10: "tenth", 11: "eleventh", 12: "twelfth"}
    return words.get(n, f"{n}th")


NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                "twelve")


def number_word(n: int) -> str:
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else f"{n:,}"


def join_list(items: Sequence[str], conjunction: str = "and") -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    if len(items) == 2:
        return f"{items[0]} {conjunction} {items[1]}"
    return ", ".join(items[:-1]) + f", {conjunction} {items[-1]}"


_ONSETS = ("b", "br", "c", "ch", "d", "dr", "f", "g", "gr", "h", "k", "l", "m", "n", "p", "pr", "r", "s", "sh",
           "st", "t", "th", "tr", "v", "w")
_NUCLEI = ("a", "e", "i", "o", "u", "ai", "ea", "ee", "oa", "ou")
_CODAS = ("", "", "n", "r", "l", "s", "m", "nd", "rn", "ck", "st", "th")
_PLACE_SUFFIXES = ("ford", "ton", "bury", "wick", "mere", "field", "haven", "by", "stead", "moor", "bridge",
                   "dale", "port", "holm", "ley", "worth", "combe", "gate", "ham", "thorpe")

GIVEN_NAMES = (
    "Ada", "Alan", "Alice", "Amir", "Anna", "Arthur", "Beatrice", "Ben", "Carmen", "Clara", "Daniel", "Dora",
    "Edith", "Elena", "Emil", "Esther", "Felix", "Frances", "Gabriel", "Grace", "Hana", "Harold", "Ines", "Isaac",
    "Ivy", "Jonah", "Julia", "Kai", "Karin", "Leo", "Lena", "Lucas", "Maeve", "Marcus", "Maria", "Mina", "Nadia",
    "Nathan", "Nora", "Oscar", "Olive", "Pablo", "Priya", "Quentin", "Rosa", "Ruth", "Samuel", "Sara", "Simon",
    "Tessa", "Theo", "Uma", "Victor", "Vera", "Walter", "Wren", "Yusuf", "Zara", "Hugo", "Iris", "Malik", "Ottilie",
)
SURNAMES = (
    "Abbott", "Baker", "Carver", "Dalton", "Ellis", "Fisher", "Garner", "Hale", "Ingram", "Jarvis", "Keller",
    "Lowell", "Mercer", "Nash", "Osborne", "Pryce", "Quill", "Rowe", "Sutton", "Thorne", "Underwood", "Vance",
    "Walsh", "Yardley", "Marsh", "Holloway", "Brennan", "Castell", "Dunmore", "Fairweather", "Greaves", "Hartley",
    "Lindqvist", "Moreau", "Okafor", "Petrov", "Rinaldi", "Sato", "Tanaka", "Varga", "Weller", "Zeller",
)


def syllable(rng: random.Random) -> str:
    return rng.choice(_ONSETS) + rng.choice(_NUCLEI) + rng.choice(_CODAS)


def place_name(rng: random.Random) -> str:
    stem = syllable(rng) if rng.random() < 0.7 else syllable(rng) + syllable(rng)
    return capitalise(stem + rng.choice(_PLACE_SUFFIXES))


def region_name(rng: random.Random) -> str:
    return capitalise(syllable(rng) + syllable(rng) + rng.choice(("ia", "and", "mark", "shire", "en", "a")))


def person_name(rng: random.Random) -> str:
    return f"{rng.choice(GIVEN_NAMES)} {rng.choice(SURNAMES)}"


def pick(rng: random.Random, options: Sequence[str], k: int) -> list[str]:
    return rng.sample(list(options), k)
