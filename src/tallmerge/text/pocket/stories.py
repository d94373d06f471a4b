"""Reading tasks: story endings (Story Cloze), commonsense reading (CosmosQA), social situations
(Social IQa) and passage questions (QuAIL)."""

from __future__ import annotations

import random

from tallmerge.text.pocket import world as w
from tallmerge.text.pocket.common import PocketTask, arrange, dash_list, pick_other, strings_in
from tallmerge.text.tasks import Example

# --------------------------------------------------------------------------- story endings (Story Cloze)
# (intro, cues that lead to the first ending, cues that lead to the second, turning point, the two
# endings, and two twists that decide the outcome whatever the cue: the first leads to the second
# ending, the other to the first)
_SCENARIOS = (
    ("{a} signed up for a race in the park .",
     ("{a_he} trained hard every morning .", "{a_he} ran in the park each day to get ready ."),
     ("{a_he} did not train at all .", "{a_he} stayed in bed every morning instead of training ."),
     "on the day of the race , {a_he} stood at the start with the others .",
     ("{a_he} won the race easily .", "{a_he} finished last in the race ."),
     ("but the night before the race , {a_he} hurt {a_his} leg .", "but all the fast runners were sick that day .")),
    ("{a} planted some beans in {a_his} garden .",
     ("{a_he} watered them every day .", "{a_he} made sure they got plenty of water ."),
     ("{a_he} forgot to water them .", "{a_he} did not water them for weeks ."),
     "a month later , {a_he} went to look at them .",
     ("the beans had grown tall and green .", "the beans had dried up and died ."),
     ("but {a_he} had used salty water by mistake .", "but it rained hard every single day .")),
    ("{a} had a big exam at school on {day} .",
     ("{a_he} studied every evening that week .", "{a_he} read all of {a_his} notes twice ."),
     ("{a_he} played games every evening instead of studying .", "{a_he} did not open a single book ."),
     "when the exam started , {a_he} picked up {a_his} pen .",
     ("{a_he} passed the exam with a high mark .", "{a_he} failed the exam badly ."),
     ("but {a_he} fell ill on the morning of the exam .", "but the exam turned out to be very easy .")),
    ("the sky was dark when {a} left for work .",
     ("{a_he} took {a_his} umbrella along .", "{a_he} grabbed an umbrella on the way out ."),
     ("{a_he} left {a_his} umbrella at home .", "{a_he} did not take an umbrella ."),
     "halfway there , it started to rain hard .",
     ("{a_he} stayed dry all the way .", "{a_he} got wet from head to toe ."),
     ("but the wind blew the umbrella out of {a_his} hand .", "but a friend shared an umbrella with {a_him} .")),
    ("{a} baked a cake for {b}'s birthday .",
     ("{a_he} set a timer so {a_he} would not forget it .", "{a_he} watched the oven closely ."),
     ("{a_he} forgot about the cake and went out .", "{a_he} fell asleep while it was in the oven ."),
     "after an hour , {a_he} opened the oven .",
     ("the cake was soft and golden .", "the cake was black and burned ."),
     ("but then a long phone call made {a_him} forget the cake .", "but {b} came by and turned the oven off in time .")),
    ("{a} let {a_his} dog play in the garden .",
     ("{a_he} closed the gate behind {a_him} .", "{a_he} checked that the gate was shut ."),
     ("{a_he} left the gate open .", "{a_he} forgot to shut the gate ."),
     "then {a_he} went inside to make lunch .",
     ("the dog was still in the garden when {a_he} came back .", "the dog had run away when {a_he} came back ."),
     ("but a strong wind blew the gate open .", "but the dog was too tired to move .")),
    ("{a} had to catch the early bus to the city .",
     ("{a_he} set an alarm and woke up on time .", "{a_he} left home early ."),
     ("{a_he} slept through {a_his} alarm .", "{a_he} left home very late ."),
     "{a_he} ran down the street to the stop .",
     ("{a_he} got on the bus just in time .", "{a_he} watched the bus drive away without {a_him} ."),
     ("but {a_he} had to go back home for {a_his} wallet .", "but the bus was very late that morning too .")),
    ("{a} wanted to call {b} in the evening .",
     ("{a_he} charged {a_his} phone in the afternoon .", "{a_he} made sure {a_his} phone was full of charge ."),
     ("{a_he} forgot to charge {a_his} phone .", "{a_his} phone was almost out of charge ."),
     "after dinner , {a_he} picked up the phone .",
     ("{a_he} talked to {b} for an hour .", "the phone died before {a_he} could talk to {b} ."),
     ("but {a_he} dropped the phone in the sink .", "but {a_he} borrowed a charger from a friend .")),
    ("{a} brought a box of cookies to school .",
     ("{a_he} shared them with {b} at lunch .", "{a_he} gave half of them to {b} ."),
     ("{a_he} would not share any with {b} .", "{a_he} ate them all in front of {b} ."),
     "the next day , {b} had a bag of sweets .",
     ("{b} gave some sweets to {a} .", "{b} kept all the sweets away from {a} ."),
     ("but later {a_he} laughed at {b} in front of everyone .", "but later {a_he} helped {b} with a hard lesson .")),
    ("{a} went for a walk on a cold winter day .",
     ("{a_he} wore a thick warm coat .", "{a_he} put on a coat and a scarf ."),
     ("{a_he} wore only a thin shirt .", "{a_he} did not bring a coat ."),
     "the wind was icy and strong .",
     ("{a_he} came home warm and cheerful .", "{a_he} came home shivering and caught a cold ."),
     ("but {a_he} slipped and fell into a cold stream .", "but {a_he} spent most of the walk in a warm cafe .")),
    ("{a} went to the market to buy some {food} .",
     ("{a_he} brought {a_his} wallet along .", "{a_he} had plenty of money in {a_his} pocket ."),
     ("{a_he} left {a_his} wallet on the table at home .", "{a_he} had no money on {a_him} ."),
     "at the market , {a_he} found the {food} {a_he} wanted .",
     ("{a_he} carried the {food} home happily .", "{a_he} had to go home without the {food} ."),
     ("but someone stole {a_his} money on the way .", "but {a_his} friend {b} paid for {a_him} .")),
    ("{a} carried a glass vase across the room .",
     ("{a_he} walked slowly and held it with both hands .", "{a_he} was very careful with it ."),
     ("{a_he} ran and held it with one hand .", "{a_he} was not careful with it at all ."),
     "a toy was lying on the floor .",
     ("{a_he} put the vase down safely on the table .", "{a_he} tripped and the vase shattered on the floor ."),
     ("but suddenly the lights went out .", "but {b} picked up the toy just in time .")),
    ("{a} bought an ice cream at the beach .",
     ("{a_he} ate it right away .", "{a_he} ate it quickly in the shade ."),
     ("{a_he} left it in the sun while {a_he} swam .", "{a_he} put it down on a hot rock and forgot it ."),
     "later , {a_he} wanted to finish it .",
     ("{a_he} enjoyed every bite of it .", "there was nothing left to eat ."),
     ("but a bird snatched it out of {a_his} hand .", "but clouds covered the sun all afternoon .")),
    ("{a} came home late at night .",
     ("{a_he} had put {a_his} key in {a_his} pocket that morning .", "{a_he} always kept a key in {a_his} bag ."),
     ("{a_he} had left {a_his} key inside the house .", "{a_he} had lost {a_his} key at work ."),
     "{a_he} stood at the front door .",
     ("{a_he} got inside and went to bed .", "{a_he} had to wait outside for help ."),
     ("but {a_he} could not find the key in the dark .", "but {b} was at home and let {a_him} in .")),
)  # fmt: skip
_TWIST_SHARE = 0.2  # stories where a twist, in the filler's place, decides the outcome
_DENIED_SHARE = 0.3  # stories where someone's claim of the cue is denied, which turns its outcome round
_DENIAL = "{b} said that {cue} , but that was not true ."
_FILLERS = ("it was a {day} .", "{b} was busy that day .", "the weather was mild that week .",
            "{a_his} friend {b} lived nearby .")  # fmt: skip
_STORY_PROMPTS = (
    "{story} what is a possible continuation for the story given the following options ? {opts}",
    "read the following story : {story} choose the best ending to the story . {opts}",
    "generate a possible ending for the following story : {story}",
)


def _story(rng: random.Random, scenario, a, b) -> tuple[list[str], tuple[str, str], int]:
    """The four sentences, the two endings and the coherent ending's index."""
    intro, cues0, cues1, turn, endings, twists = scenario
    cue = rng.randrange(2)
    right = cue
    cue_text = rng.choice((cues0, cues1)[cue])
    if rng.random() < _DENIED_SHARE:  # "b said that <cue>, but that was not true": the other outcome
        cue_text = _DENIAL.format(b="{b}", cue=cue_text.removesuffix(" ."))
        right = 1 - cue
    if rng.random() < _TWIST_SHARE:  # the twist comes after the cue and decides, whatever the cue
        twist = rng.randrange(2)
        middle, right = [cue_text, twists[twist]], 1 - twist
    else:
        middle = [cue_text, rng.choice(_FILLERS)]
        rng.shuffle(middle)
    fields = dict(day=rng.choice(w.DAYS), food=rng.choice(w.FOODS))
    sentences = [w.fill(s, a, b, **fields) for s in (intro, *middle, turn)]
    return sentences, tuple(w.fill(e, a, b, **fields) for e in endings), right


class StoryEnding(PocketTask):
    """Story ending, standing for Story Cloze; answer one of two endings.

    A four-sentence story (an intro, a cue and a filler in either order, a turning point) and two
    endings of the same form; the cue (trained or did not train, took the umbrella or left it...)
    decides which ending is coherent, unless someone's claim of it is denied ("b said that ...,
    but that was not true") or a twist in the filler's place (hurt a leg the night before, a
    friend shared an umbrella...) decides instead. Both endings are as positive, as long and as
    related to the story.
    """

    name, paper_task, k = "story-end", "story-cloze", 2

    def make(self, rng: random.Random, target: int) -> Example:
        a, b = w.people(rng, 2)
        scenario = rng.choice(_SCENARIOS)
        sentences, endings, right = _story(rng, scenario, a, b)
        choices = arrange(rng, endings[right], [endings[1 - right]], target)
        prompt = rng.choice(_STORY_PROMPTS).format(story=" ".join(sentences), opts=dash_list(choices))
        return Example(prompt, choices, target)

    def texts(self):
        return strings_in(_SCENARIOS, _FILLERS, _DENIAL, _STORY_PROMPTS)

    def facts(self):
        out = []
        for i, scenario in enumerate(_SCENARIOS):
            a, b = w.person(w.FEMALE[i]), w.person(w.MALE[i])
            out += [" ".join(w.fill(s, a, b) for s in scenario[k]) for k in (1, 2, 5)]  # cues and twists
            for seed in range(4):
                sentences, endings, right = _story(random.Random(seed), scenario, a, b)
                out.append(" ".join(sentences) + " " + endings[right])
        fillers = [w.fill(f, w.person("sam"), w.person("mia"), day="friday") for f in _FILLERS]
        return (
            out
            + fillers
            + [
                "the story had a happy ending , and we read another story next .",
                "the best continuation of a story is the one that is possible after what happened .",
                "tom will generate a new ending for the story .",
                "mia was given a book , and she said that it was true .",
            ]
        )

    def narrative(self, rng):
        a, b = w.people(rng, 2)
        sentences, endings, right = _story(rng, rng.choice(_SCENARIOS), a, b)
        return " ".join(sentences) + " " + endings[right]


# --------------------------------------------------------------------------- social situations (Social IQa)
_SOCIAL = (  # (what {a} did to {b}; why; how {a} feels; how {b} feels; what {a} needed first; {a} wants; {b} wants)
    ("{a} helped {b} carry heavy bags home", "to be helpful", "useful", "grateful", "notice the heavy bags",
     "go home and rest", "thank {a}"),
    ("{a} threw a surprise party for {b}", "to make {b} happy", "excited", "surprised", "invite some friends",
     "see {b}'s face", "hug {a}"),
    ("{a} lent {b} some money", "to help {b} pay the rent", "generous", "relieved", "have some money",
     "be paid back later", "pay {a} back"),
    ("{a} yelled at {b} in front of everyone", "to show {a_he} was upset", "angry", "embarrassed",
     "lose {a_his} temper", "calm down", "walk away"),
    ("{a} cooked dinner for {b}", "to feed {b}", "proud", "pleased", "buy some food", "eat together",
     "wash the dishes"),
    ("{a} taught {b} how to ride a bike", "to help {b} learn", "patient", "confident", "find a bike",
     "watch {b} ride", "practise more"),
    ("{a} said sorry to {b} for being late", "to make things right", "sorry", "forgiving", "arrive late",
     "be on time next time", "accept the apology"),
    ("{a} gave {b} a big hug", "to comfort {b}", "caring", "loved", "walk up to {b}", "cheer {b} up", "smile"),
    ("{a} beat {b} at a game of chess", "to win the game", "proud", "disappointed", "learn the rules",
     "celebrate", "ask for a rematch"),
    ("{a} told {b} a funny joke", "to make {b} laugh", "amused", "cheerful", "think of a joke",
     "tell another joke", "laugh"),
    ("{a} invited {b} to the cinema", "to spend time with {b}", "hopeful", "happy", "buy two tickets",
     "watch a film", "pick a film"),
    ("{a} ignored {b} at the party", "to avoid {b}", "awkward", "hurt", "see {b} there", "leave early",
     "ask what is wrong"),
    ("{a} gave {b} a ride to the station", "to help {b} catch a train", "kind", "thankful", "have a car",
     "drive home", "catch the train"),
    ("{a} copied {b}'s answers in the exam", "to get a good mark", "guilty", "betrayed", "sit next to {b}",
     "hide it", "tell the teacher"),
    ("{a} read a story to {b} at bedtime", "to help {b} fall asleep", "calm", "sleepy", "choose a book",
     "turn off the light", "go to sleep"),
    ("{a} pulled {b} out of the river", "to save {b}", "scared", "safe", "see {b} fall in",
     "make sure {b} is fine", "get warm"),
    ("{a} took the last slice of {b}'s pizza", "to fill up", "full", "annoyed", "see the pizza",
     "take a nap", "order another pizza"),
    ("{a} painted a picture for {b}", "to give {b} a gift", "creative", "touched", "buy some paint",
     "paint another one", "hang it on the wall"),
)  # fmt: skip
_SOCIAL_QUESTIONS = (  # (question, field of a row, field whose answer is the near-miss distractor)
    ("why did {a} do this ?", 1, 4),
    ("how would {a} feel afterwards ?", 2, 3),
    ("how would {b} feel as a result ?", 3, 2),
    ("what does {a} need to do before this ?", 4, 1),
    ("what will {a} want to do next ?", 5, 6),
    ("what will {b} want to do next ?", 6, 5),
)
_SOCIAL_PROMPTS = (
    "{c} . given the context : {q} possible answers : {opts}",
    "context : {c} . question : {q} which one of these answers best answers the question according to the "
    "context ? {opts}",
    "{c} . {q} {opts}",
)


class SocialSituation(PocketTask):
    """Social commonsense, standing for Social IQa; answer one of 3 options.

    One person does something to another; the question asks a motivation, a need, a reaction or
    a want of either of them. One wrong option is the same situation's answer for the other person
    or the other question; the other comes from another situation.
    """

    name, paper_task, k = "social-sense", "social-iqa", 3

    def make(self, rng: random.Random, target: int) -> Example:
        a, b = w.people(rng, 2)
        row = rng.choice(_SOCIAL)
        question, field, near = rng.choice(_SOCIAL_QUESTIONS)
        right, near_miss = row[field], row[near]
        far = pick_other(rng, [r[field] for r in _SOCIAL], right, near_miss)
        choices = tuple(w.fill(c, a, b) for c in arrange(rng, right, [near_miss, far], target))
        prompt = rng.choice(_SOCIAL_PROMPTS).format(c=w.fill(row[0], a, b), q=w.fill(question, a, b),
                                                    opts=dash_list(choices))  # fmt: skip
        return Example(prompt, choices, target)

    def texts(self):
        return strings_in(_SOCIAL, _SOCIAL_QUESTIONS, _SOCIAL_PROMPTS)

    def facts(self):
        out = []
        for i, row in enumerate(_SOCIAL):
            a, b = w.person(w.MALE[-i - 1]), w.person(w.FEMALE[-i - 1])
            out.append(w.fill(f"{row[0]} {row[1]} . {{a}} had to {row[4]} first . afterwards {{a}} felt {row[2]} "
                              f"and {{b}} felt {row[3]} . then {{a}} wanted to {row[5]} , and {{b}} wanted to "
                              f"{row[6]} .", a, b))  # fmt: skip
        return out + [
            "in that context , there were three answers , and one of these answers best fits .",
            "people need food and sleep , and they need to rest .",
            "what tom will want to do next depends on how he would feel as a result , according to mia .",
            "she asked why he did this and what he needs to do before this .",
        ]

    def narrative(self, rng):
        a, b = w.people(rng, 2)
        row = rng.choice(_SOCIAL)
        return w.fill(f"{row[0]} {row[1]} , and afterwards {{b}} felt {row[3]} .", a, b)


# --------------------------------------------------------------------------- commonsense reading (CosmosQA)
_SITUATIONS = (  # (what happened to {a}; how {a} felt; what {a} does next; a likely reason)
    ("{a} missed the last bus home", "annoyed", "walk home in the dark", "{a_he} left work too late"),
    ("{a} got a letter saying {a_he} had won a prize", "thrilled", "tell {a_his} family the news",
     "{a_he} had entered a contest"),
    ("{a}'s cat did not come home for two days", "worried", "search the streets for it",
     "the cat had wandered off"),
    ("{a} spilled coffee all over {a_his} new shirt", "embarrassed", "go home and change",
     "{a_he} bumped into someone"),
    ("{a} got lost in a big city", "confused", "ask someone for directions", "{a_he} had never been there before"),
    ("{a} finished painting the fence", "satisfied", "clean the brushes", "the old paint was peeling"),
    ("{a} burned the rice while cooking", "frustrated", "order some food", "{a_he} was talking on the phone"),
    ("{a} found some money on the street", "lucky", "take it to the police", "someone had dropped it"),
    ("{a} could not sleep all night", "exhausted", "take a nap after lunch", "the neighbours played loud music"),
    ("{a} moved into a new flat", "excited", "unpack the boxes", "{a_he} got a new job in town"),
    ("{a} hurt {a_his} ankle while running", "in pain", "put ice on it", "{a_he} slipped on wet leaves"),
    ("{a} was not picked for the team", "disappointed", "practise even harder", "the other players were faster"),
    ("{a}'s parents gave {a_him} a puppy", "delighted", "take it for a walk", "{a_he} had wanted a dog for years"),
    ("{a}'s car would not start", "stressed", "call a mechanic", "the battery was flat"),
    ("{a} forgot {a_his} lines in the school play", "nervous", "ask for help from the wings",
     "{a_he} had not practised enough"),
    ("{a} was invited to a wedding", "honoured", "buy a nice outfit", "{a_he} knows the couple well"),
)  # fmt: skip
_OPENERS = ("it had been a long week for everyone .", "last {day} was a strange day .",
            "{a} and {b} share a flat near the {place} .")  # fmt: skip
_COSMOS_QUESTIONS = (("how did {x} probably feel ?", 1), ("what may be {x}'s feeling ?", 1),
                     ("what will {x} probably do next ?", 2), ("what may be the reason for what happened to {x} ?", 3))  # fmt: skip
_COSMOS_PROMPTS = (
    "{ctx} according to the above context , choose the best option to answer the question : {q} {opts}",
    "{ctx} {q} pick the best answer from the following options : {opts}",
    "read the following context and answer the question . context : {ctx} question : {q} options : {opts}",
)


class CommonsenseReading(PocketTask):
    """Reading comprehension with commonsense, standing for CosmosQA; answer one of 4 options.

    A short passage where two people each go through something (missed the bus, won a prize...);
    the question asks how one of them probably felt, what they will do next or a likely reason,
    none of which the passage states. One wrong option is the right answer for the other person.
    """

    name, paper_task, k = "commonsense-read", "cosmos-qa", 4

    def make(self, rng: random.Random, target: int) -> Example:
        a, b = w.people(rng, 2)
        sa, sb, *others = rng.sample(_SITUATIONS, 4)
        asked = rng.randrange(2)
        x, sx, sy = ((a, sa, sb), (b, sb, sa))[asked]
        question, field = rng.choice(_COSMOS_QUESTIONS)
        opener = w.fill(rng.choice(_OPENERS), a, b, day=rng.choice(w.DAYS), place=rng.choice(w.PLACES))
        ctx = f"{opener} {w.fill(sa[0], a)} . {w.fill(sb[0], b)} ."
        wrong = [w.fill(s[field], x) for s in (sy, *others)]
        choices = arrange(rng, w.fill(sx[field], x), wrong, target)
        prompt = rng.choice(_COSMOS_PROMPTS).format(
            ctx=ctx, q=question.format(x=x.name), opts=dash_list(choices)
        )
        return Example(prompt, choices, target)

    def texts(self):
        return strings_in(_SITUATIONS, _OPENERS, _COSMOS_QUESTIONS, _COSMOS_PROMPTS)

    def facts(self):
        out = []
        for i, (what, feel, then, why) in enumerate(_SITUATIONS):
            a = w.person((w.FEMALE + w.MALE)[i * 2])
            out.append(
                w.fill(f"{what} because {why} . {{a_he}} felt {feel} , so {{a_he}} decided to {then} .", a)
            )
        a, b = w.person("tom"), w.person("ana")
        out += [w.fill(o, a, b, day="sunday", place="park") for o in _OPENERS]
        return out + [
            "according to the context , mia could pick the best of the options , and the reason is probably simple .",
            "one option was to walk home , and the other option was to wait .",
            "read the context to know what happened and what may be her feeling .",
        ]

    def narrative(self, rng):
        a = w.people(rng, 1)[0]
        what, feel, then, why = rng.choice(_SITUATIONS)
        return w.fill(f"{what} , so {{a_he}} felt {feel} and decided to {then} .", a)


# --------------------------------------------------------------------------- passage questions (QuAIL)
_CONNECTIVES = ("first ,", "then", "after that ,", "finally ,")
_EVENT = "{c} {p} bought a {colour} {thing} at the {place} ."
_NEI = "not enough information"
_QUAIL_QUESTIONS = {
    "place": "where did {p} buy the {thing} ?",
    "thing": "what did {p} buy at the {place} ?",
    "colour": "what colour was the {thing} that {p} bought ?",
    "who": "who went to the {place} ?",
    "next": "where did someone shop right after the {place} ?",
}
_QUAIL_PROMPTS = (
    "{ctx} question : {q} options : {opts} === the correct answer is",
    "read the following context and answer the question . context : {ctx} question : {q} options : {opts}",
    "{ctx} according to the above context , answer the following question . {q} {opts}",
)


class PassageQA(PocketTask):
    """Passage question answering, standing for QuAIL; answer one of 4 options.

    A passage of four errands by two people (who went where, in which order, and bought which
    thing of which colour) and a question of one of several types: a place, a thing, a colour, a
    person, what came next, or one the passage cannot answer. As in QuAIL, one option is always
    "not enough information"; the other wrong ones come from the same passage where they can.
    """

    name, paper_task, k = "passage-qa", "quail", 4

    def make(self, rng: random.Random, target: int) -> Example:
        a, b = rng.sample(w.MALE + w.FEMALE, 2)
        who = [a, b, a, b]
        rng.shuffle(who)
        places, things = rng.sample(w.PLACES, 5), rng.sample(w.THINGS, 5)
        colours = [rng.choice(w.COLOURS) for _ in range(4)]
        ctx = " ".join(_EVENT.format(c=c, p=p, place=pl, colour=col, thing=t)
                       for c, p, pl, col, t in zip(_CONNECTIVES, who, places, colours, things))  # fmt: skip
        i = rng.randrange(4)
        kind = rng.choice(("place", "thing", "colour", "who", "next", "none"))
        fields = dict(p=who[i], place=places[i], thing=things[i])
        if kind == "place":
            right, pool = places[i], places[:4] + [places[4]]
        elif kind == "thing":
            right, pool = things[i], things[:4] + [things[4]]
        elif kind == "colour":
            right, pool = colours[i], colours + list(w.COLOURS)
        elif kind == "who":
            right, pool = who[i], [a, b] + rng.sample(w.MALE + w.FEMALE, 3)
        elif kind == "next":
            i = rng.randrange(3)
            fields["place"] = places[i]
            right, pool = places[i + 1], places
        else:  # a question about an errand that did not happen
            kind = rng.choice(("place", "thing"))
            j = rng.choice([j for j in range(4) if who[j] != who[i]])  # an errand of the other person
            fields = dict(p=who[i], place=places[j], thing=things[j])
            right, pool = _NEI, (places if kind == "place" else things)
        wrong = []
        for item in pool:  # the first distinct wrong items, in the pool's (passage-first) order
            if item not in wrong and item != right and item != _NEI and len(wrong) < 2 + (right == _NEI):
                wrong.append(item)
        if right != _NEI:
            wrong.append(_NEI)
        choices = arrange(rng, right, wrong, target)
        q = _QUAIL_QUESTIONS[kind].format(**fields)
        return Example(
            rng.choice(_QUAIL_PROMPTS).format(ctx=ctx, q=q, opts=dash_list(choices)), choices, target
        )

    def texts(self):
        return strings_in(_CONNECTIVES, _EVENT, _NEI, _QUAIL_QUESTIONS, _QUAIL_PROMPTS)

    def facts(self):
        names = w.MALE + w.FEMALE
        return [
            " ".join(
                _EVENT.format(
                    c=c,
                    p=names[i + j],
                    place=w.PLACES[(i + j) % 16],
                    colour=w.COLOURS[j],
                    thing=w.THINGS[(i + j) % 12],
                )
                for j, c in enumerate(_CONNECTIVES)
            )
            for i in range(0, 16, 4)
        ] + [  # fmt: skip
            "there was not enough information to know where she went right after the park .",
            "someone asked who went to the market , and tom was right .",
            "tom was following mia , and they like to shop at the market .",
        ]

    def narrative(self, rng):
        a, b = rng.sample(w.MALE + w.FEMALE, 2)
        return " ".join(_EVENT.format(c=c, p=p, place=rng.choice(w.PLACES), colour=rng.choice(w.COLOURS),
                                      thing=rng.choice(w.THINGS)) for c, p in zip(_CONNECTIVES, (a, b, a, b)))  # fmt: skip
