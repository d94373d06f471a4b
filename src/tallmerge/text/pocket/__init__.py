"""The offline pocket text benchmark: 11 generated text-to-text tasks, one per paper task.

The tasks share one small generated world (:mod:`.world`: people, animals, things and what they
are made of, places, foods, qualitative rules) and a closed lower-case vocabulary, so their task
vectors move the same word embeddings, as the real tasks do; each has its own skill and prompt
format, written like the task's T0 / promptsource prompts:

====================  =============  ==========================================  ===========
task                  stands for     skill                                       answers
====================  =============  ==========================================  ===========
``paraphrase-id``     PAWS           same meaning, or two roles exchanged?       yes / no
``fact-chain``        QASC           chain a kind-of fact and a property fact    8 options
``more-or-less``      QuaRTz         apply a "the more X, the more Y" rule       2 directions
``story-end``         Story Cloze    the ending that fits the story's cue        2 endings
``answer-sentence``   WikiQA         does the sentence answer the question?      yes / no
``blank-fill``        Winogrande     which of two entities fills the blank       2 entities
``pronoun-ref``       WSC            does the pronoun refer to this person?      yes / no
``commonsense-read``  CosmosQA       feelings, next steps, reasons of a passage  4 options
``social-sense``      Social IQa     motivations, needs, reactions, wants        3 options
``passage-qa``        QuAIL          who, where, what, order, or unanswerable    4 options
``rule-apply``        ROPES          whose case shows a background rule          2 people
====================  =============  ==========================================  ===========

:func:`corpus` gives plain sentences for T5 span-corruption pre-training: every fact and word the
tasks use, never in a prompt format (no "question :", no option lists, no blanks), so a model
pre-trained on it knows the world but not the tasks. :func:`vocabulary` lists every token any
corpus sentence or example can hold (tokens as :func:`tokens` splits them), for a word-level
tokenizer that never meets an unknown word.

Each task's ``examples(split, n, seed)`` is deterministic, balanced and split-disjoint (see
:mod:`.common`); generating 10,000 examples takes a fraction of a second.
"""

from __future__ import annotations

from tallmerge.text.pocket import world
from tallmerge.text.pocket.common import (
    DEFAULT_N,
    LIST_ITEM,
    PocketTask,
    stream,
    strings_in,
    template_tokens,
    tokens,
)
from tallmerge.text.pocket.reasoning import Comparison, FactChain, RuleApplication
from tallmerge.text.pocket.sentences import AnswerSelection, FillIn, Paraphrase, Pronoun
from tallmerge.text.pocket.stories import CommonsenseReading, PassageQA, SocialSituation, StoryEnding
from tallmerge.text.tasks import register_text_task

__all__ = [
    "CORPUS_SIZE",
    "DEFAULT_N",
    "FORMAT_TOKENS",
    "PROMPT_MARKERS",
    "TASKS",
    "corpus",
    "tokens",
    "vocabulary",
]

TASKS: tuple[PocketTask, ...] = tuple(
    register_text_task(cls())
    for cls in (Paraphrase, FactChain, Comparison, StoryEnding, AnswerSelection, FillIn, Pronoun,
                CommonsenseReading, SocialSituation, PassageQA, RuleApplication)
)  # fmt: skip
"""The 11 pocket tasks, in the order of the paper's tasks (``tasks.PAPER_TASKS``)."""

CORPUS_SIZE = 50_000
"""The recommended pre-training corpus size (sentences or short paragraphs)."""

FORMAT_TOKENS = frozenset({":", "?", "_", "-", '"', "(", ")", "=", "1", "2"})
"""Tokens only prompts use (labels, blanks, option bullets, numbered sentences); the corpus has none."""

PROMPT_MARKERS = ("yes or no", "the following", "which one of these", "possible answers", "the best option",
                  "the best answer", "the best ending", "correct answer", "the above", "the previous sentence",
                  "given the", "answer the question", "choose an answer")  # fmt: skip
"""Phrases of the prompt formats; no corpus text contains one (nor any of :data:`FORMAT_TOKENS`)."""

_FACT_SHARE = 0.3  # share of corpus items taken (in shuffled rounds) from the fixed facts


def _facts() -> list[str]:
    return world.facts() + [fact for task in TASKS for fact in task.facts()]


def corpus(n: int, seed: int) -> list[str]:
    """``n`` plain sentences or short paragraphs about the world, for span-corruption pre-training.

    About a third are the fixed facts (the world's and each task's, cycled in shuffled rounds, so
    every word is covered once ``n`` is a few times their number, about 1,200); the rest are
    random everyday sentences and task-like narratives told plainly (stories with their coherent
    ending, situations with their reactions, rules and their consequences).
    """
    rng = stream(seed, "pocket-text", "corpus")
    facts, queue, out = _facts(), [], []
    for _ in range(n):
        if rng.random() < _FACT_SHARE:
            if not queue:
                queue = list(facts)
                rng.shuffle(queue)
            out.append(queue.pop())
        elif rng.random() < 0.3:
            out.append(world.narrative(rng))
        else:
            out.append(rng.choice(TASKS).narrative(rng))
    return out


def vocabulary() -> list[str]:
    """Every token a corpus sentence or a task's input or choice can contain, sorted."""
    words = template_tokens(strings_in(world.TABLES, LIST_ITEM) + [s for task in TASKS for s in task.texts()])
    for fact in _facts():
        words.update(tokens(fact))
    return sorted(words)
