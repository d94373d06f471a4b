"""What every pocket text task shares: tokens, seeded streams, split partition, choice layout.

A task subclasses :class:`PocketTask` and writes one method, ``make(rng, target)``, that builds
one example whose right answer is ``target`` (for a yes/no task: 0 is "yes"). The base class
turns a stream of those into a split:

- the random stream is ``random.Random`` seeded by a blake2b digest of ``(seed, task, split)``,
  so it is the same in every process (never Python's salted ``hash()``);
- the targets come in shuffled blocks of ``0..k-1``, so labels are balanced (counts differ by at
  most one per block) and the answer's position never carries information;
- every input is assigned to one split by a checksum of its text (a third each), and an example
  drawn for another split is drawn again, so two splits never share an input;
- a shorter split is a prefix of a longer one with the same seed.
"""

from __future__ import annotations

import hashlib
import random
import re
import zlib
from pathlib import Path

from tallmerge.errors import TallmergeError
from tallmerge.text.tasks import SPLITS, Example

DEFAULT_N = {"train": 10_000, "val": 1_000, "test": 2_000}
"""Examples per split when ``n`` is None."""

_TOKEN = re.compile(r"\w+|[^\w\s]")
_FIELD = re.compile(r"\{\w*\}")
_MAX_DRAWS = 200  # draws for one example before giving up (a task whose space is too small)


def tokens(text: str) -> list[str]:
    """The word-level tokens of a text: runs of word characters and single punctuation marks."""
    return _TOKEN.findall(text)


def template_tokens(strings) -> set[str]:
    """Every token the strings can put into a text once their ``{field}``s are filled in."""
    out: set[str] = set()
    for s in strings:
        out.update(tokens(_FIELD.sub(" ", s)))
    return out


def strings_in(*tables) -> list[str]:
    """All the strings nested in tuples, lists, sets and dict values (keys are names, not text)."""
    out: list[str] = []
    stack = list(tables)
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
    return out


def stream(seed: int, *keys: str) -> random.Random:
    """A random stream that depends only on ``seed`` and the keys, in any process."""
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise TallmergeError(f"seed must be a non-negative integer, got {seed!r}")
    digest = hashlib.blake2b("/".join((str(int(seed)), *keys)).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def split_of(text: str) -> str:
    """The one split an input may appear in (a checksum of its text picks it)."""
    return SPLITS[zlib.crc32(text.encode()) % len(SPLITS)]


def arrange(rng: random.Random, right: str, wrong, target: int) -> tuple[str, ...]:
    """The choices with ``right`` at position ``target`` and the wrong ones shuffled around it."""
    wrong = list(wrong)
    rng.shuffle(wrong)
    wrong.insert(target, right)
    return tuple(wrong)


LIST_ITEM = "- {}"
"""How promptsource lists an option (the vocabulary reads the bullet from here)."""


def dash_list(choices) -> str:
    """Choices as promptsource lists them: ``- first - second ...``."""
    return " ".join(LIST_ITEM.format(c) for c in choices)


def pick_other(rng: random.Random, pool, *exclude):
    """A random item of ``pool`` that is none of ``exclude``."""
    while True:
        item = rng.choice(pool)
        if item not in exclude:
            return item


class PocketTask:
    """A generated text task: subclasses set the class attributes and write :meth:`make`."""

    name: str = ""
    paper_task: str = ""
    k: int = 2  # answer choices per example
    yes_no: bool = False  # the choices are always ("yes", "no") and target 0 means "yes"

    def make(self, rng: random.Random, target: int) -> Example:
        """One example whose answer is at position ``target`` (for a yes/no task: "yes" if 0)."""
        raise NotImplementedError

    def texts(self) -> list[str]:
        """Every template and word table the task draws text from (for :func:`vocabulary`)."""
        raise NotImplementedError

    def facts(self) -> list[str]:
        """Plain sentences (no prompt format) that use every word of :meth:`texts`, for the corpus."""
        raise NotImplementedError

    def narrative(self, rng: random.Random) -> str:
        """A random plain sentence or paragraph about the task's content, for the corpus."""
        raise NotImplementedError

    def examples(self, split: str, n: int | None, seed: int, root: Path | None = None) -> list[Example]:
        if split not in SPLITS:
            raise TallmergeError(
                f"unknown split {split!r} for text task {self.name!r}; expected one of {SPLITS}"
            )
        n = DEFAULT_N[split] if n is None else n
        if isinstance(n, bool) or int(n) != n or n < 0:
            raise TallmergeError(f"the number of examples must be a non-negative integer, got {n!r}")
        rng = stream(seed, "pocket-text", self.name, split)
        out: list[Example] = []
        block: list[int] = []
        while len(out) < n:
            if not block:
                block = list(range(self.k))
                rng.shuffle(block)
            target = block.pop()
            for _ in range(_MAX_DRAWS):
                example = self.make(rng, target)
                if split_of(example.input) == split:
                    break
            else:
                raise TallmergeError(f"text task {self.name!r} drew no {split} example in {_MAX_DRAWS} tries")
            out.append(example)
        return out

    def __repr__(self) -> str:
        return f"<pocket text task {self.name} ({self.paper_task})>"


def yes_no_example(text: str, answer_yes: bool) -> Example:
    """A yes/no example (choices always in the order "yes", "no", as promptsource lists them)."""
    return Example(text, ("yes", "no"), 0 if answer_yes else 1)
