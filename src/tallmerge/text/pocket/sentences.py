"""Sentence-level tasks: paraphrase (PAWS), answer selection (WikiQA), fill-in (Winogrande), pronouns (WSC)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from tallmerge.text.pocket import world as w
from tallmerge.text.pocket.common import PocketTask, arrange, pick_other, strings_in, yes_no_example
from tallmerge.text.tasks import Example


# --------------------------------------------------------------------------- paraphrase (PAWS)
@dataclass(frozen=True)
class _Frame:
    """One meaning in several same-word wordings; exchanging a pair of ``swaps`` changes it."""

    wordings: tuple[str, ...]
    adverbial: str  # said before (with a comma) or after the clause; "" for none
    swaps: tuple[tuple[str, str], ...]


_FRAMES = (
    _Frame(("{p1} gave the {col1} {thing} to {p2}", "{p1} gave {p2} the {col1} {thing}"), "at the {place}",
           (("p1", "p2"),)),
    _Frame(("{p1} and {p2} visited {p3}", "{p2} and {p1} visited {p3}"), "on {day}", (("p1", "p3"), ("p2", "p3"))),
    _Frame(("the {col1} {an1} chased the {col2} {an2}", "the {col2} {an2} was chased by the {col1} {an1}"),
           "near the {place}", (("col1", "col2"), ("an1", "an2"))),
    _Frame(("{p1} moved from the {pl1} to the {pl2}", "{p1} moved to the {pl2} from the {pl1}"), "on {day}",
           (("pl1", "pl2"),)),
    _Frame(("{p1} bought {f1} and {f2} for {p2}", "{p1} bought {f2} and {f1} for {p2}"), "at the {place}",
           (("p1", "p2"),)),
    _Frame(("{p1} likes {f1} but {p2} likes {f2}", "{p2} likes {f2} but {p1} likes {f1}"), "",
           (("f1", "f2"), ("p1", "p2"))),
    _Frame(("{p1} is taller than {p2}", "{p2} is shorter than {p1}"), "", (("p1", "p2"),)),
    _Frame(("{p1} left the {place} before {p2} arrived", "{p2} arrived after {p1} left the {place}"), "",
           (("p1", "p2"),)),
)  # fmt: skip
_ANIMALS = tuple(sg for members in w.ANIMALS.values() for sg, _ in members)

_PAWS_PROMPTS = (
    "sentence 1 : {s1} sentence 2 : {s2} question : do sentence 1 and sentence 2 express the same meaning ? "
    "yes or no ?",
    "determine if the following two sentences paraphrase each other or not . sentence 1 : {s1} "
    "sentence 2 : {s2}",
    "sentence 1 : {s1} sentence 2 : {s2} question : can we rewrite sentence 1 to sentence 2 ? yes or no ?",
)


def _frame_values(rng: random.Random) -> dict[str, str]:
    p1, p2, p3 = rng.sample(w.MALE + w.FEMALE, 3)
    col1, col2 = rng.sample(w.COLOURS, 2)
    an1, an2 = rng.sample(_ANIMALS, 2)
    pl1, pl2, place = rng.sample(w.PLACES, 3)
    f1, f2 = rng.sample(w.FOODS, 2)
    return dict(p1=p1, p2=p2, p3=p3, col1=col1, col2=col2, an1=an1, an2=an2, pl1=pl1, pl2=pl2,
                place=place, f1=f1, f2=f2, day=rng.choice(w.DAYS), thing=rng.choice(w.THINGS))  # fmt: skip


def _say(frame: _Frame, wording: int, front: bool, values: dict[str, str]) -> str:
    clause = frame.wordings[wording].format(**values)
    if not frame.adverbial:
        return clause + " ."
    adverbial = frame.adverbial.format(**values)
    return f"{adverbial} , {clause} ." if front else f"{clause} {adverbial} ."


class Paraphrase(PocketTask):
    """Paraphrase identification, standing for PAWS; answer "yes" or "no".

    Two sentences with (nearly) the same words: either the same meaning reworded (clauses or
    coordinated names reordered, an adverbial moved, "taller" said as "shorter" the other way
    round, "before" as "after") or a changed meaning (two roles exchanged: who gave to whom,
    which colour belongs to which animal, from where to where).
    """

    name, paper_task, k, yes_no = "paraphrase-id", "paws", 2, True

    def make(self, rng: random.Random, target: int) -> Example:
        frame = rng.choice(_FRAMES)
        values = _frame_values(rng)
        ways = [
            (i, f)
            for i in range(len(frame.wordings))
            for f in ((False, True) if frame.adverbial else (False,))
        ]
        first, second = rng.sample(ways, 2)  # reworded in both classes, so rewording tells nothing
        s1 = _say(frame, *first, values)
        if target == 1:  # a changed meaning: exchange one pair of roles
            x, y = rng.choice(frame.swaps)
            values = {**values, x: values[y], y: values[x]}
        s2 = _say(frame, *second, values)
        return yes_no_example(rng.choice(_PAWS_PROMPTS).format(s1=s1, s2=s2), target == 0)

    def texts(self):
        return strings_in([(f.wordings, f.adverbial) for f in _FRAMES], _PAWS_PROMPTS, _ANIMALS)

    def facts(self):
        values = dict(p1="tom", p2="mia", p3="sam", col1="red", col2="blue", an1="fox", an2="owl", pl1="park",
                      pl2="zoo", place="market", f1="bread", f2="cheese", day="monday", thing="kite")  # fmt: skip
        out = [
            _say(f, i, front, values)
            for f in _FRAMES
            for i in range(len(f.wordings))
            for front in (False, True)
        ]
        return out + [
            "the teacher asked us to rewrite each sentence so that it would express the same meaning .",
            "two sentences can paraphrase each other or not , and we can determine which from their words .",
            "the first sentence and the second sentence had many words in common .",
            "mia said yes , but tom said no .",
        ]

    def narrative(self, rng):
        frame = rng.choice(_FRAMES)
        return _say(frame, rng.randrange(len(frame.wordings)), rng.random() < 0.5, _frame_values(rng))


# --------------------------------------------------------------------------- answer selection (WikiQA)
_ATTRIBUTES = {  # kind: (values, questions, answer sentences); "{v}": the value, "{t}": the thing
    "home": (w.PLACES, ("where does {a} live ?", "in which part of town does {a} live ?"),
             ("{a} lives in a small house near the {v} .", "{a} has lived close to the {v} for years .")),
    "job": (w.JOBS, ("what does {a} do for a living ?", "what is {a}'s job ?"),
            ("{a} works as a {v} in town .", "{a} has been a {v} for many years .")),
    "pet": (w.PETS, ("what pet does {a} have ?", "which animal does {a} keep as a pet ?"),
            ("{a} has a {v} as a pet .", "{a} keeps a {v} at home as a pet .")),
    "food": (w.FOODS, ("what is {a}'s favourite food ?", "what does {a} like to eat most ?"),
             ("{a} likes to eat {v} more than anything .", "{a}'s favourite food is {v} .")),
    "colour": (w.COLOURS, ("what colour is {a}'s {t} ?", "which colour is the {t} that {a} owns ?"),
               ("{a}'s {t} is painted {v} .", "{a} has a {v} {t} .")),
}  # fmt: skip
_KINDS = tuple(_ATTRIBUTES)
_SOURCES = ("according to {c} , ", "{c} says that ", "")
_WIKI_PROMPTS = (
    "question : {q} i found the following answer online : {s} is that a correct answer ? yes or no ?",
    "determine if the following sentence answers the question . sentence : {s} question : {q}",
    'question : {q} would " {s} " be a reasonable answer ? yes or no ?',
)


def _attribute_sentence(rng: random.Random, kind: str, who: str, thing: str) -> str:
    values, _, answers = _ATTRIBUTES[kind]
    return rng.choice(answers).format(a=who, v=rng.choice(values), t=thing)


class AnswerSelection(PocketTask):
    """Answer-sentence selection, standing for WikiQA; answer "yes" or "no".

    A question about one person (home, job, pet, favourite food, colour of a thing) and a
    candidate sentence: it answers only if it is about the same person and the same attribute
    (and the same thing). Wrong candidates are about the same person's other attribute or thing,
    or another person's same attribute; any candidate may be attributed to a third person.
    """

    name, paper_task, k, yes_no = "answer-sentence", "wiki-qa", 2, True

    def make(self, rng: random.Random, target: int) -> Example:
        a, b, c = rng.sample(w.MALE + w.FEMALE, 3)
        kind = rng.choice(_KINDS)
        thing = rng.choice(w.THINGS)
        question = rng.choice(_ATTRIBUTES[kind][1]).format(a=a, t=thing)
        who, about, other_thing = a, kind, thing
        if target == 1:
            wrong = rng.random()
            if wrong < 0.4:
                about = pick_other(rng, _KINDS, kind)
            elif wrong < 0.85 or kind != "colour":
                who = b
            else:
                other_thing = pick_other(rng, w.THINGS, thing)
        sentence = rng.choice(_SOURCES).format(c=c) + _attribute_sentence(rng, about, who, other_thing)
        return yes_no_example(rng.choice(_WIKI_PROMPTS).format(q=question, s=sentence), target == 0)

    def texts(self):
        return strings_in(_ATTRIBUTES, _SOURCES, _WIKI_PROMPTS)

    def facts(self):
        out = []
        for values, _, answers in _ATTRIBUTES.values():
            for i, v in enumerate(values):
                name = (w.MALE + w.FEMALE)[i]
                out.append(answers[i % len(answers)].format(a=name, v=v, t=w.THINGS[i % len(w.THINGS)]))
        return out + [
            "according to mia , tom says that he found the answer online .",
            "a correct reply tells you what you asked , and a reasonable answer is about the right person .",
            "the teacher asked where the museum is , and which part of town it was in .",
            "tom asked what animal lives in the pond , and mia knew who owns it .",
            "tom and mia live near the park , and they keep a cat because they like cats most of all .",
            "the question was about what sam does for a living and in which colour he painted his door .",
        ]

    def narrative(self, rng):
        kind = rng.choice(_KINDS)
        return rng.choice(_SOURCES).format(c=rng.choice(w.FEMALE)) + _attribute_sentence(
            rng, kind, rng.choice(w.MALE), rng.choice(w.THINGS)
        )


# --------------------------------------------------------------------------- twin sentences
# A twin: a sentence about two entities whose trigger word (one of two) decides which one is meant.
_PEOPLE_TWINS = (  # (sentence, triggers): the first trigger points to {a}, the second to {b}
    ("{a} could not finish the race but {b} could , because {x} was {t} .", ("tired", "fit")),
    ("{a} wanted to borrow money from {b} because {x} was {t} .", ("poor", "rich")),
    ("{a} likes cats but {b} likes dogs , so {x} bought a {t} .", ("kitten", "puppy")),
    ("{a} went to see the doctor instead of {b} because {x} was {t} .", ("sick", "healthy")),
    ("{a} ate the whole cake while {b} ate nothing , so later {x} was {t} .", ("full", "hungry")),
    ("{a} studied all week but {b} did not , so {x} {t} the exam .", ("passed", "failed")),
    ("{a} gave a present to {b} because {x} {t} .", ("was generous", "had a birthday")),
    ("{a} was afraid of the dog but {b} was not , so {x} {t} .", ("ran away", "petted it")),
    ("{a} asked {b} for directions because {x} {t} .", ("was new in town", "knew the town well")),
    ("{a} was shivering while {b} felt fine , because {x} had {t} .", ("forgotten a coat", "brought a coat")),
    ("{a} taught {b} how to cook because {x} {t} .", ("was a good cook", "could not cook")),
)  # fmt: skip
_THING_TWINS = (  # {x} and {y}: things; the first trigger points to {x}
    ("the {x} did not fit in the {y} because the {z} was too {t} .", ("big", "small")),
    ("the {x} is heavier than the {y} , so the {z} is {t} to carry .", ("harder", "easier")),
)
_INSIDE = ("ball", "book", "cake", "lamp", "pot", "blanket", "kite", "statue", "candle", "bottle")
_CONTAINERS = ("box", "bag", "jar", "bucket", "drawer", "basket", "case", "chest")
_MATERIAL_TWIN = "the {x} {verb} but the {y} did not , because the {z} is made of {t} ."
_WINO_PROMPTS = (
    "{s} what does the _ in the above sentence refer to ? {o1} or {o2} ?",
    "fill in the _ in the following sentence : {s} choices : {o1} or {o2}",
    "in the sentence below , does the _ stand for {o1} or {o2} ? {s}",
)


class FillIn(PocketTask):
    """Option fill-in, standing for Winogrande; answer one of the two entities (people or things).

    A twin sentence with a blank "_" for one of two people (or things): the trigger word (tired /
    fit, big / small, the material a thing is made of...) decides which one fits.
    """

    name, paper_task, k = "blank-fill", "winogrande", 2

    def make(self, rng: random.Random, target: int) -> Example:
        which = rng.randrange(2)  # 0: the first-mentioned entity fits
        kind = rng.random()
        if kind < 0.7:
            a, b = w.people(rng, 2, same_gender=True)
            sentence, triggers = rng.choice(_PEOPLE_TWINS)
            text = w.fill(sentence, a, b, x="_", t=triggers[which])
            options = (a.name, b.name)
        elif kind < 0.85:
            sentence, triggers = rng.choice(_THING_TWINS)
            x, y = rng.choice(_INSIDE), rng.choice(_CONTAINERS)
            if "heavier" in sentence:
                x, y = rng.sample(_INSIDE + _CONTAINERS, 2)
            text = sentence.format(x=x, y=y, z="_", t=triggers[which])
            options = (x, y)
        else:
            mx, my = rng.sample(w.MATERIALS, 2)
            x, y = rng.choice(mx.things), rng.choice(my.things)
            text = _MATERIAL_TWIN.format(x=x, y=y, z="_", verb=mx.verb[2], t=(mx.name, my.name)[which])
            options = (x, y)
        choices = arrange(rng, options[which], [options[1 - which]], target)
        prompt = rng.choice(_WINO_PROMPTS).format(s=text, o1=choices[0], o2=choices[1])
        return Example(prompt, choices, target)

    def texts(self):
        return strings_in(_PEOPLE_TWINS, _THING_TWINS, _INSIDE, _CONTAINERS, _MATERIAL_TWIN, _WINO_PROMPTS)

    def facts(self):
        out = []
        for i, (sentence, triggers) in enumerate(_PEOPLE_TWINS):
            a, b = w.person(w.MALE[i]), w.person(w.MALE[i + 1])
            out += [w.fill(sentence, a, b, x=(a, b)[j].name, t=t) for j, t in enumerate(triggers)]
        for sentence, triggers in _THING_TWINS:
            for j, (x, y) in enumerate(zip(_INSIDE, _CONTAINERS)):
                out.append(sentence.format(x=x, y=y, z=x if j % 2 == 0 else y, t=triggers[j % 2]))
        out.append(
            f"the {_INSIDE[-2]} is in the {_CONTAINERS[-1]} , and the {_INSIDE[-1]} is in the {_CONTAINERS[-2]} ."
        )
        return out + [
            "the teacher asked us to fill in the missing word in each sentence below , and we had two choices .",
            "each letter can stand for a word .",
        ]

    def narrative(self, rng):
        a, b = w.people(rng, 2, same_gender=True)
        sentence, triggers = rng.choice(_PEOPLE_TWINS)
        which = rng.randrange(2)
        return w.fill(sentence, a, b, x=(a, b)[which].name, t=triggers[which])


_PRONOUN_TWINS = (  # (sentence with pronoun {p}, triggers): the first trigger means {a}, the second {b}
    ("{a} could not lift {b} because {p} was so {t} .", ("weak", "heavy")),
    ("{a} paid {b} because {p} had {t} the old bike .", ("bought", "sold")),
    ("{a} beat {b} at chess because {p} was {t} .", ("clever", "careless")),
    ("{a} lent {b} an umbrella because {p} {t} .", ("had two", "had none")),
    ("{a} visited {b} at the hospital because {p} was {t} .", ("worried", "sick")),
    ("{a} chased {b} because {p} {t} .", ("was angry", "had taken the ball")),
    ("{a} thanked {b} because {p} {t} .", ("was grateful", "had helped a lot")),
    ("{a} waited for {b} at the station because {p} was {t} .", ("early", "late")),
    ("{a} could not hear {b} because {p} was {t} .", ("listening to music", "speaking so quietly")),
    ("{a} gave {b} some soup because {p} was {t} .", ("kind", "hungry")),
    ("{a} was angry with {b} because {p} had {t} .", ("been lied to", "told a lie")),
    ("{a} woke {b} up because {p} had {t} .", ("heard a noise", "slept too long")),
    ("{a} taught {b} to swim because {p} {t} .", ("was a strong swimmer", "was scared of water")),
    ("{a} called {b} to say sorry because {p} had been {t} .", ("rude", "upset")),
    ("{a} tried to catch {b} but {p} was too {t} .", ("slow", "fast")),
    ("{a} followed {b} home because {p} {t} .", ("was lost", "knew the way")),
)  # fmt: skip
_WSC_PROMPTS = (
    '{s} in the previous sentence , does the pronoun " {p} " refer to {c} ? yes or no ?',
    '{s} here , by " {p} " they mean " {c} " . yes or no ?',
    '{s} question : in the passage above , does the pronoun " {p} " refer to {c} ? answer :',
)


class Pronoun(PocketTask):
    """Pronoun resolution, standing for WSC; answer "yes" or "no".

    A Winograd twin about two people of one gender: does the pronoun refer to the named person?
    The trigger word (weak / heavy, bought / sold...) decides whom it refers to.
    """

    name, paper_task, k, yes_no = "pronoun-ref", "wsc", 2, True

    def make(self, rng: random.Random, target: int) -> Example:
        a, b = w.people(rng, 2, same_gender=True)
        sentence, triggers = rng.choice(_PRONOUN_TWINS)
        referent = rng.randrange(2)
        asked = referent if target == 0 else 1 - referent
        text = w.fill(sentence, a, b, p=a.he, t=triggers[referent])
        prompt = rng.choice(_WSC_PROMPTS).format(s=text, p=a.he, c=(a, b)[asked].name)
        return yes_no_example(prompt, target == 0)

    def texts(self):
        return strings_in(_PRONOUN_TWINS, _WSC_PROMPTS)

    def facts(self):
        out = []
        for i, (sentence, triggers) in enumerate(_PRONOUN_TWINS):
            a, b = w.person(w.FEMALE[i]), w.person(w.FEMALE[i + 1])
            out += [w.fill(sentence, a, b, p=(a, b)[j].name, t=t) for j, t in enumerate(triggers)]
        return out + [
            "in the passage above , the pronoun he may refer to tom , and here they mean sam .",
            "a pronoun such as she can refer to mia in a previous sentence .",
        ]

    def narrative(self, rng):
        a, b = w.people(rng, 2, same_gender=True)
        sentence, triggers = rng.choice(_PRONOUN_TWINS)
        return w.fill(sentence, a, b, p=a.he, t=rng.choice(triggers))
