"""Rule and fact tasks: two-fact chains (QASC), qualitative comparison (QuaRTz), rule application (ROPES)."""

from __future__ import annotations

import random

from tallmerge.text.pocket import world as w
from tallmerge.text.pocket.common import PocketTask, arrange, dash_list, pick_other, strings_in
from tallmerge.text.tasks import Example

# --------------------------------------------------------------------------- two-fact chains (QASC)
_MEMBERSHIP = ("{pl} are {cls_pl} .", "{a_sg} is a kind of {cls} .", "every {sg} is {a_cls} .")
_MADE_OF = ("a {x} is made of {m} .", "the {x} is made of {m} .", "every {x} is made of {m} .")
_ANIMAL_TRAITS = {  # relation: (contrast fact, question)
    "covering": ("{c1} are covered in {v1} , while {c2} are covered in {v2} .", "what are {pl} covered in ?"),
    "part": ("{c1} have {v1} , but {c2} have {v2} .", "what do {pl} have ?"),
}
_MATERIAL_FACT = "{c1} can {v1} , while {c2} can {v2} ."
_MATERIAL_QUESTIONS = ("what can a {x} do ?", "what will a {x} do ?")
_HOMES = ("{a} lives near the {p} .", "{a} has a house by the {p} .")
_NEIGHBOURS = {  # relation: (contrast fact, question)
    "food": ("everyone near the {c1} eats {v1} , while everyone near the {c2} eats {v2} .", "what does {a} eat ?"),
    "job": ("everyone near the {c1} works as a {v1} , but everyone near the {c2} works as a {v2} .",
            "what does {a} work as ?"),
}  # fmt: skip
_ANIMAL_VALUES = tuple(w.COVERING.values()) + tuple(w.BODY_PART.values())
_VERBS = tuple(m.verb[0] for m in w.MATERIALS)
_QASC_PROMPTS = (
    "fact 1 : {f1} fact 2 : {f2} given the two facts above , answer the question \" {q} \" with the following "
    "options : {opts}",
    "{f1} {f2} question : {q} choose an answer from this list : {opts}",
    "question : {q} options : {opts} use these facts to answer : {f1} {f2}",
)  # fmt: skip


class FactChain(PocketTask):
    """Two-fact composition, standing for QASC; answer one of 8 options.

    One fact says what kind of thing something is (a fox is a mammal, a spoon is made of metal,
    tom lives near the park); the other contrasts what two kinds have or do (mammals have fur,
    while birds have feathers; everyone near the park eats bread, while...). The question asks
    about the thing, so the answer needs both facts chained; the wrong options include the other
    kind's property and the bridging kind itself. Half the chains are about people, drawn per
    example, so that they cannot be answered from world knowledge, only from the facts.
    """

    name, paper_task, k = "fact-chain", "qasc", 8

    def make(self, rng: random.Random, target: int) -> Example:
        draw = rng.random()
        chain = _people_chain if draw < 0.5 else _animal_chain if draw < 0.75 else _material_chain
        facts, question, v1, v2, bridge, pool = chain(rng)
        rng.shuffle(facts)
        wrong = [v2, bridge, *rng.sample([v for v in pool if v not in (v1, v2)], self.k - 3)]
        choices = arrange(rng, v1, wrong, target)
        prompt = rng.choice(_QASC_PROMPTS).format(
            f1=facts[0], f2=facts[1], q=question, opts=dash_list(choices)
        )
        return Example(prompt, choices, target)

    def texts(self):
        return strings_in(
            _MEMBERSHIP,
            _MADE_OF,
            _ANIMAL_TRAITS,
            _MATERIAL_FACT,
            _MATERIAL_QUESTIONS,
            _QASC_PROMPTS,
            _HOMES,
            _NEIGHBOURS,
        )

    def facts(self):
        out = [
            f"{a.name} can {a.verb[0]} , while {b.name} can {b.verb[0]} ."
            for a, b in zip(w.MATERIALS, w.MATERIALS[1:])
        ]
        out += [
            f"every {m.things[0]} is made of {m.name} , so a {m.things[0]} will {m.verb[0]} ."
            for m in w.MATERIALS
        ]
        out += [f"every {members[0][0]} is {w.article(cls)} ." for cls, members in w.ANIMALS.items()]
        return (
            out
            + [
                "with two facts , you can often answer a harder question .",
                "mia had to choose from a list of options , and she used these facts .",
                "it is a fact that these facts are true , and the two facts were about animals .",
                "tom wanted to know what a mammal can do and what fish have .",
                "tom has a house by the park , and everyone there likes to work .",
            ]
            + [
                _NEIGHBOURS[r][0].format(c1="park", v1=v1, c2="zoo", v2=v2)
                for r, v1, v2 in (("food", "bread", "soup"), ("job", "baker", "nurse"))
            ]
        )

    def narrative(self, rng):
        draw = rng.random()
        if draw < 0.4:
            facts, *_ = _people_chain(rng)
            return " ".join(facts)
        if draw < 0.7:
            m = rng.choice(w.MATERIALS)
            return f"a {rng.choice(m.things)} is made of {m.name} , and {m.name} can {m.verb[0]} ."
        cls = rng.choice(tuple(w.ANIMALS))
        sg, pl = rng.choice(w.ANIMALS[cls])
        return f"{pl} are {w.CLASS_PLURAL[cls]} , and {w.CLASS_PLURAL[cls]} have {w.BODY_PART[cls]} ."


def _contrast(rng: random.Random, template: str, kind1: str, v1: str, kind2: str, v2: str) -> str:
    """A fact contrasting two kinds, in either order."""
    pairs = [(kind1, v1), (kind2, v2)]
    rng.shuffle(pairs)
    return template.format(c1=pairs[0][0], v1=pairs[0][1], c2=pairs[1][0], v2=pairs[1][1])


def _animal_chain(rng: random.Random):
    """(facts, question, answer, contrasted value, bridging kind, value pool) about an animal's class."""
    cls, other = rng.sample(tuple(w.ANIMALS), 2)
    sg, pl = rng.choice(w.ANIMALS[cls])
    relation = rng.choice(tuple(_ANIMAL_TRAITS))
    values = w.COVERING if relation == "covering" else w.BODY_PART
    contrast, question = _ANIMAL_TRAITS[relation]
    bridge = w.CLASS_PLURAL[cls]
    member = rng.choice(_MEMBERSHIP).format(
        pl=pl, sg=sg, a_sg=w.article(sg), cls=cls, a_cls=w.article(cls), cls_pl=bridge
    )
    fact = _contrast(rng, contrast, bridge, values[cls], w.CLASS_PLURAL[other], values[other])
    return [member, fact], question.format(pl=pl), values[cls], values[other], bridge, _ANIMAL_VALUES


def _material_chain(rng: random.Random):
    """The same about what a thing's material can do."""
    m, other = rng.sample(w.MATERIALS, 2)
    x = rng.choice(m.things)
    made = rng.choice(_MADE_OF).format(x=x, m=m.name)
    fact = _contrast(rng, _MATERIAL_FACT, m.name, m.verb[0], other.name, other.verb[0])
    return [made, fact], rng.choice(_MATERIAL_QUESTIONS).format(x=x), m.verb[0], other.verb[0], m.name, _VERBS


def _people_chain(rng: random.Random):
    """The same about a person: where they live, and what everyone living there eats or works as.

    These facts are drawn per example, so only the given facts answer the question."""
    a = rng.choice(w.MALE + w.FEMALE)
    p1, p2 = rng.sample(w.PLACES, 2)
    relation = rng.choice(tuple(_NEIGHBOURS))
    pool = w.FOODS if relation == "food" else w.JOBS
    v1, v2 = rng.sample(pool, 2)
    contrast, question = _NEIGHBOURS[relation]
    home = rng.choice(_HOMES).format(a=a, p=p1)
    return [home, _contrast(rng, contrast, p1, v1, p2, v2)], question.format(a=a), v1, v2, p1, pool


# --------------------------------------------------------------------------- qualitative comparison (QuaRTz)
_QUARTZ_QUESTIONS = (  # (question, (answer if the effect grows, answer if it shrinks))
    ("if the {cause} that {a}'s {holder} gets is {changed} , will it have more or less {effect} ?", ("more", "less")),
    ("{a} makes sure {a_his} {holder} gets {chg} {cause} than before . will its {effect} go up or go down ?",
     ("go up", "go down")),
    ("{a}'s {holder} gets {chg} {cause} than {b}'s {holder} . is the {effect} of {a}'s {holder} higher or lower ?",
     ("higher", "lower")),
)  # fmt: skip
_QUARTZ_PROMPTS = (
    "answer the question below : {q} assuming that : {rule}",
    "given the fact that : {rule} answer the question : {q}",
    "{rule} having read the above passage , choose the right answer to the following question ( choices are "
    "{c1} or {c2} ) : {q}",
)


class Comparison(PocketTask):
    """Qualitative comparison, standing for QuaRTz; answer one of two directions (more / less...).

    A stated qualitative rule ("the more sunlight a plant gets, the more growth it has", or an
    inverse one) applied to a change or a comparison: the answer is the direction of the effect,
    which flips with both the rule's sign and the direction of the change.
    """

    name, paper_task, k = "more-or-less", "quartz", 2

    def make(self, rng: random.Random, target: int) -> Example:
        rule = rng.choice(w.RULES)
        question, answers = rng.choice(_QUARTZ_QUESTIONS)
        grows = rng.random() < 0.5
        chg = "more" if grows == (rule.sign > 0) else "less"
        a, b = w.people(rng, 2)
        changed = "increased" if chg == "more" else "reduced"  # the change, in words other than the answers'
        q = w.fill(
            question, a, b, holder=rule.holder, chg=chg, changed=changed, cause=rule.cause, effect=rule.effect
        )
        choices = arrange(rng, answers[0 if grows else 1], [answers[1 if grows else 0]], target)
        prompt = rng.choice(_QUARTZ_PROMPTS).format(
            q=q, rule=w.state_rule(rng, rule), c1=choices[0], c2=choices[1]
        )
        return Example(prompt, choices, target)

    def texts(self):
        return strings_in(_QUARTZ_QUESTIONS, _QUARTZ_PROMPTS)

    def facts(self):
        r = w.RULES[0]
        return [
            f"if the {r.cause} that a {r.holder} gets is increased , it will have more {r.effect} , and if it is "
            "reduced , it will have less .",
            f"tom makes sure his {r.holder} gets more {r.cause} than before , so its {r.effect} will go up .",
            f"mia's {r.holder} gets less {r.cause} than tom's {r.holder} , so the {r.effect} of mia's {r.holder} "
            "is lower , and that of tom's is higher . it did not go down .",
            "having read the passage above , mia could choose the right answer , assuming that the facts were true .",
            "the choices are few , and the question below is hard .",
        ]

    def narrative(self, rng):
        return w.state_rule(rng, rng.choice(w.RULES))


# --------------------------------------------------------------------------- rule application (ROPES)
_AMOUNTS = ("a lot of", "very little")
_ROPES_AMOUNT_SITUATION = "{a} and {b} each have a {holder} . {a}'s {holder} gets {amt1} {cause} , while {b}'s gets {amt2} {cause} ."
_ROPES_AMOUNT_QUESTION = "whose {holder} has {q} {effect} ?"
_ROPES_MATERIAL_RULE = "{m1} {v1} when it is {passive} , but {m2} does not ."
_ROPES_MATERIAL_SITUATION = "{a} {act1} . {b} {act2} too ."
_ROPES_MATERIAL_QUESTIONS = ("whose object {past} ?", "whose object did not {base} ?")
_ROPES_PROMPTS = (
    "background : {bg} paragraph : {sit} given the paragraph above , please answer correctly the following "
    "question : {q}",
    "i can use this background : {bg} now , i have a new situation : {sit} answer this question please : {q}",
    "{sit} given the paragraph above and this background : {bg} answer the question : {q}",
)  # fmt: skip


class RuleApplication(PocketTask):
    """Applying background knowledge to a situation, standing for ROPES; answer one of two people.

    The background states a rule (a qualitative one, or what a material does under a condition);
    the situation gives two people different cases of it (much or little of the cause, things of
    two materials, named or not); the question asks whose case shows (or does not show) the effect.
    """

    name, paper_task, k = "rule-apply", "ropes", 2

    def make(self, rng: random.Random, target: int) -> Example:
        a, b = w.people(rng, 2)
        which = rng.randrange(2)  # 0: a is the answer
        if rng.random() < 0.5:
            rule = rng.choice(w.RULES)
            a_more = rng.random() < 0.5
            a_effect_more = a_more == (rule.sign > 0)
            q = "more" if a_effect_more == (which == 0) else "less"
            amounts = _AMOUNTS if a_more else _AMOUNTS[::-1]
            bg = w.state_rule(rng, rule)
            sit = _ROPES_AMOUNT_SITUATION.format(a=a.name, b=b.name, holder=rule.holder, amt1=amounts[0],
                                                 amt2=amounts[1], cause=rule.cause)  # fmt: skip
            question = _ROPES_AMOUNT_QUESTION.format(holder=rule.holder, q=q, effect=rule.effect)
        else:
            m1 = rng.choice(w.MATERIALS)
            m2 = pick_other(rng, w.MATERIALS, m1)
            named = rng.random() < 0.5
            x1, x2 = (
                f"a {m.name} {rng.choice(m.things)}" if named else f"a {rng.choice(m.things)}"
                for m in (m1, m2)
            )
            shows_effect = rng.random() < 0.5  # does a have the thing that shows the effect?
            xa, xb = (x1, x2) if shows_effect else (x2, x1)
            bg = _ROPES_MATERIAL_RULE.format(m1=m1.name, v1=m1.verb[1], passive=m1.passive, m2=m2.name)
            sit = _ROPES_MATERIAL_SITUATION.format(
                a=a.name, b=b.name, act1=m1.act.format(x=xa), act2=m1.act.format(x=xb)
            )
            asks_effect = shows_effect == (which == 0)
            question = _ROPES_MATERIAL_QUESTIONS[0 if asks_effect else 1].format(
                past=m1.verb[2], base=m1.verb[0]
            )
        choices = arrange(rng, (a.name, b.name)[which], [(a.name, b.name)[1 - which]], target)
        return Example(rng.choice(_ROPES_PROMPTS).format(bg=bg, sit=sit, q=question), choices, target)

    def texts(self):
        return strings_in(_AMOUNTS, _ROPES_AMOUNT_SITUATION, _ROPES_AMOUNT_QUESTION, _ROPES_MATERIAL_RULE,
                          _ROPES_MATERIAL_SITUATION, _ROPES_MATERIAL_QUESTIONS, _ROPES_PROMPTS)  # fmt: skip

    def facts(self):
        r, m1, m2 = w.RULES[1], w.MATERIALS[0], w.MATERIALS[1]
        return [
            f"tom and mia each have a {r.holder} . tom's {r.holder} gets a lot of {r.cause} , while mia's gets "
            f"very little {r.cause} , so mia's {r.holder} has more {r.effect} .",
            f"{m1.name} {m1.verb[1]} when it is {m1.passive} , but {m2.name} does not . sam {m1.act.format(x='a key')} "
            f". ana {m1.act.format(x='a jar')} too . the object of sam {m1.verb[2]} , and the object of ana did not .",
            "i can use this background to answer correctly , now that i have a new situation .",
            "please read the paragraph above and give the background .",
            "tom asked whose kite it was , and mia knew whose it was .",
        ]

    def narrative(self, rng):
        m = rng.choice(w.MATERIALS)
        x = rng.choice(m.things)
        return f"{w.person(rng.choice(w.MALE)).name} {m.act.format(x='a ' + x)} , and the {x} {m.verb[2]} because {m.name} {m.verb[1]} when it is {m.passive} ."
