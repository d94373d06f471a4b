"""The pocket world: the people, animals, things, places and rules every task and the corpus share.

All text is lower case. The world is a fixed table (the seed only picks from it), so every word
is known ahead and :func:`tallmerge.text.pocket.vocabulary` can list them all. Facts here are the
world's "common knowledge": the corpus states them plainly and the tasks ask about them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

MALE = ("tom", "sam", "ben", "max", "leo", "dan", "jack", "paul", "mark", "ivan",
        "omar", "raj", "kai", "noah", "luke", "adam", "eric", "hugo", "finn", "carl")  # fmt: skip
FEMALE = ("mia", "ana", "eva", "lily", "emma", "zoe", "nora", "ruth", "kate", "lena",
          "sara", "ivy", "maya", "rosa", "jane", "amy", "nina", "tara", "lucy", "hana")  # fmt: skip
COLOURS = ("red", "blue", "green", "yellow", "black", "white", "brown", "grey", "purple")
PLACES = ("park", "market", "library", "school", "beach", "farm", "station", "museum",
          "bakery", "harbour", "cafe", "zoo", "stadium", "cinema", "hospital", "office")  # fmt: skip
JOBS = ("baker", "doctor", "teacher", "farmer", "nurse", "painter", "pilot", "driver",
        "cook", "singer", "builder", "writer", "dentist", "tailor", "vet", "gardener")  # fmt: skip
FOODS = ("bread", "soup", "apples", "rice", "cheese", "eggs", "cake", "pasta",
         "pears", "beans", "honey", "carrots", "noodles", "pie", "cookies", "plums")  # fmt: skip
THINGS = ("bike", "hat", "coat", "bag", "scarf", "umbrella", "kite", "boat", "cup", "lamp", "door", "sofa")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# Animals by class (singular, plural); each class has a body covering and a body part.
ANIMALS = {
    "mammal": (("fox", "foxes"), ("rabbit", "rabbits"), ("bear", "bears"), ("horse", "horses"),
               ("mouse", "mice"), ("wolf", "wolves"), ("goat", "goats"), ("cat", "cats"),
               ("dog", "dogs"), ("whale", "whales")),
    "bird": (("owl", "owls"), ("duck", "ducks"), ("crow", "crows"), ("eagle", "eagles"),
             ("parrot", "parrots"), ("robin", "robins")),
    "fish": (("shark", "sharks"), ("eel", "eels"), ("minnow", "minnows"), ("goldfish", "goldfish")),
    "reptile": (("snake", "snakes"), ("lizard", "lizards"), ("turtle", "turtles"),
                ("crocodile", "crocodiles")),
    "insect": (("ant", "ants"), ("bee", "bees"), ("beetle", "beetles"), ("moth", "moths"), ("wasp", "wasps")),
}  # fmt: skip
CLASS_PLURAL = {
    "mammal": "mammals",
    "bird": "birds",
    "fish": "fish",
    "reptile": "reptiles",
    "insect": "insects",
}
COVERING = {
    "mammal": "fur",
    "bird": "feathers",
    "fish": "slime",
    "reptile": "scales",
    "insect": "a hard shell",
}
BODY_PART = {
    "mammal": "sharp teeth",
    "bird": "a beak",
    "fish": "gills",
    "reptile": "a long tail",
    "insect": "six legs",
}
PETS = (
    "cat",
    "dog",
    "rabbit",
    "mouse",
    "parrot",
    "goldfish",
    "turtle",
    "lizard",
    "snake",
    "duck",
    "goat",
    "horse",
)


@dataclass(frozen=True)
class Material:
    """A material, the things made of it and what it does under one condition (unique per material)."""

    name: str
    things: tuple[str, ...]
    verb: tuple[str, str, str]  # base, third person, past: ("rust", "rusts", "rusted")
    act: str  # what a person does to a thing ("{x}": the thing), e.g. "left {x} out in the rain"
    passive: str  # the condition said of the material, e.g. "left out in the rain"


MATERIALS = (
    Material("metal", ("spoon", "key", "nail", "pot", "coin"), ("rust", "rusts", "rusted"),
             "left {x} out in the rain", "left out in the rain"),
    Material("glass", ("bottle", "jar", "mirror", "vase", "lens"), ("shatter", "shatters", "shattered"),
             "dropped {x} on the floor", "dropped on the floor"),
    Material("wood", ("chair", "table", "log", "stick", "plank"), ("float", "floats", "floated"),
             "put {x} in a pond", "put in a pond"),
    Material("stone", ("brick", "statue", "pebble", "slab"), ("sink", "sinks", "sank"),
             "put {x} in a pond", "put in a pond"),
    Material("paper", ("book", "letter", "map", "ticket", "napkin"), ("tear", "tears", "tore"),
             "pulled {x} hard", "pulled hard"),
    Material("rubber", ("ball", "tire", "boot", "glove", "band"), ("stretch", "stretches", "stretched"),
             "pulled {x} hard", "pulled hard"),
    Material("wax", ("candle", "crayon"), ("melt", "melts", "melted"), "left {x} in the sun", "left in the sun"),
    Material("cloth", ("shirt", "sock", "blanket", "flag", "towel"), ("fade", "fades", "faded"),
             "left {x} in the sun", "left in the sun"),
    Material("plastic", ("bucket", "comb", "straw", "toy"), ("bend", "bends", "bent"),
             "pressed {x} hard", "pressed hard"),
)  # fmt: skip


@dataclass(frozen=True)
class Rule:
    """A qualitative rule: the more ``cause`` a ``holder`` gets, the more (sign 1) or less ``effect``."""

    holder: str
    cause: str
    effect: str
    sign: int


RULES = tuple(Rule(*r) for r in (
    ("plant", "sunlight", "growth", 1), ("car", "weight", "speed", -1), ("kettle", "heat", "steam", 1),
    ("runner", "practice", "speed", 1), ("student", "study", "mistakes", -1), ("river", "rain", "flooding", 1),
    ("ball", "air", "bounce", 1), ("snowman", "sunshine", "size", -1), ("drum", "force", "noise", 1),
    ("magnet", "distance", "pull", -1), ("fire", "wood", "heat", 1), ("battery", "use", "charge", -1),
    ("pond", "sunshine", "algae", 1), ("child", "sleep", "energy", 1), ("road", "ice", "grip", -1),
    ("garden", "water", "weeds", 1), ("motor", "oil", "friction", -1),
))  # fmt: skip

RULE_TEMPLATES = (
    "the more {cause} a {holder} gets , the {dir} {effect} it has .",
    "when a {holder} gets more {cause} , it has {dir} {effect} .",
    "more {cause} means {dir} {effect} for a {holder} .",
    "the less {cause} a {holder} gets , the {rdir} {effect} it has .",
    "when a {holder} gets less {cause} , it has {rdir} {effect} .",
    "less {cause} means {rdir} {effect} for a {holder} .",
)
"""How a rule is stated, in the corpus and in the tasks: ``dir`` is "more" for a rule of sign 1
(more cause, more effect) and "less" for sign -1; ``rdir`` the other way round."""


def rule_text(template: str, rule: Rule) -> str:
    dirs = ("more", "less") if rule.sign > 0 else ("less", "more")
    return template.format(
        cause=rule.cause, holder=rule.holder, effect=rule.effect, dir=dirs[0], rdir=dirs[1]
    )


def state_rule(rng: random.Random, rule: Rule) -> str:
    return rule_text(rng.choice(RULE_TEMPLATES), rule)


@dataclass(frozen=True)
class Person:
    name: str
    he: str
    him: str
    his: str


def person(name: str) -> Person:
    return Person(name, "he", "him", "his") if name in MALE else Person(name, "she", "her", "her")


def people(rng: random.Random, count: int, same_gender: bool = False) -> list[Person]:
    """``count`` different people, of one gender if ``same_gender`` (so a pronoun fits them all)."""
    if same_gender:
        return [person(n) for n in rng.sample(rng.choice((MALE, FEMALE)), count)]
    return [person(n) for n in rng.sample(MALE + FEMALE, count)]


def fill(template: str, *persons: Person, **fields) -> str:
    """A template with people ``a``, ``b``, ``c`` (``{a}``, ``{a_he}``, ``{a_him}``, ``{a_his}``...)."""
    for key, p in zip("abc", persons):
        fields.setdefault(key, p.name)
        fields.setdefault(f"{key}_he", p.he)
        fields.setdefault(f"{key}_him", p.him)
        fields.setdefault(f"{key}_his", p.his)
    return template.format(**fields)


def article(word: str) -> str:
    """``word`` with its indefinite article: "a fox", "an owl"."""
    return ("an " if word[0] in "aeiou" else "a ") + word


def animal_class(animal: str) -> str:
    return next(c for c, members in ANIMALS.items() if any(animal in pair for pair in members))


def facts() -> list[str]:
    """The world's common knowledge as plain sentences, each word of the tables in at least one."""
    out = []
    for cls, members in ANIMALS.items():
        plural = CLASS_PLURAL[cls]
        out += [f"{plural} are covered in {COVERING[cls]} .", f"{plural} have {BODY_PART[cls]} ."]
        for sg, pl in members:
            out += [f"{pl} are {plural} .", f"{article(sg)} is a kind of {cls} ."]
    for m in MATERIALS:
        out.append(f"{m.name} {m.verb[1]} when it is {m.passive} .")
        out += [f"a {t} is made of {m.name} ." for t in m.things]
        out.append(f"if you {m.act.format(x='a ' + m.things[0])} , it will {m.verb[0]} .")
        out.append(f"the {m.things[-1]} {m.verb[2]} because it was {m.passive} .")
    for rule in RULES:
        out += [rule_text(template, rule) for template in RULE_TEMPLATES]
    names = MALE + FEMALE
    for i, name in enumerate(names):
        p = person(name)
        out.append(
            f"{name} lives near the {PLACES[i % len(PLACES)]} and works as a {JOBS[i % len(JOBS)]} . "
            f"{p.he} likes to eat {FOODS[i % len(FOODS)]} , and {p.his} {THINGS[i % len(THINGS)]} is "
            f"{COLOURS[i % len(COLOURS)]} . {p.he} has a {PETS[i % len(PETS)]} as a pet ."
        )
    for i, day in enumerate(DAYS):
        out.append(f"on {day} , {names[i]} went to the {PLACES[-i - 1]} with {names[-i - 1]} .")
    return out


NARRATIVES = (
    "{a} went to the {place} with {b} and they ate {food} together .",
    "{a} works as a {job} and lives near the {place} .",
    "{a} gave {a_his} {colour} {thing} to {b} at the {place} .",
    "on {day} , {a} saw a {pet} near the {place} .",
    "{a} {act} , and the {x} {verb} .",
    "{a} has a {pet} as a pet , and {b} likes to eat {food} .",
    "{a} told {b} that {a_his} {thing} is {colour} .",
)


def narrative(rng: random.Random) -> str:
    """One random everyday sentence about the world's people, places and things, or a rule."""
    if rng.random() < 0.15:
        return state_rule(rng, rng.choice(RULES))
    m = rng.choice(MATERIALS)
    x = rng.choice(m.things)
    return fill(
        rng.choice(NARRATIVES), *people(rng, 2), place=rng.choice(PLACES), food=rng.choice(FOODS),
        thing=rng.choice(THINGS), colour=rng.choice(COLOURS), job=rng.choice(JOBS), day=rng.choice(DAYS),
        pet=rng.choice(PETS), act=m.act.format(x="the " + x), x=x, verb=m.verb[2],
    )  # fmt: skip


TABLES = (MALE, FEMALE, COLOURS, PLACES, JOBS, FOODS, THINGS, DAYS, ANIMALS, CLASS_PLURAL, COVERING,
          BODY_PART, PETS, [(m.name, m.things, m.verb, m.act, m.passive) for m in MATERIALS],
          [(r.holder, r.cause, r.effect) for r in RULES], RULE_TEMPLATES, ("he", "him", "his", "she", "her"),
          ("more", "less"), NARRATIVES)  # fmt: skip
"""Every table of the world (the vocabulary reads its words from here)."""
