"""Tokenizers: the pocket benchmark's word-level tokenizer, built offline from its closed
vocabulary, and a local Hugging Face folder's own tokenizer for real models.

The pocket tokenizer keeps T5's conventions, so everything downstream treats both alike: id 0 is
the padding (and the decoder's start), 1 the end of sequence ``</s>`` appended to every encoded
text, 2 the unknown word, and the last ids are the span-corruption sentinels ``<extra_id_0>``,
``<extra_id_1>`` ... (``<extra_id_0>`` the highest id, as in T5's vocabulary).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from tallmerge.errors import TallmergeError

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"
WORD_PATTERN = r"\w+|[^\w\s]"
"""What one pocket token is: a run of word characters, or one other non-space character."""


def sentinel(i: int) -> str:
    return f"<extra_id_{i}>"


def build_tokenizer(words: Sequence[str], sentinels: int):
    """A fast word-level tokenizer over ``words`` (each one token) with T5's special tokens."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = [PAD, EOS, UNK]
    vocab = {token: i for i, token in enumerate(specials)}
    for word in words:
        vocab.setdefault(word, len(vocab))
    for i in reversed(range(sentinels)):
        vocab[sentinel(i)] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(WORD_PATTERN), behavior="isolated")]
    )
    core.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}", special_tokens=[(EOS, vocab[EOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        eos_token=EOS,
        unk_token=UNK,
        extra_special_tokens=[sentinel(i) for i in range(sentinels)],
    )


def load_tokenizer(folder: str | os.PathLike):
    """The tokenizer saved in a model folder (``tokenizer.json`` or a sentencepiece model)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, ImportError) as e:
        raise TallmergeError(
            f"{folder}: no readable tokenizer (tokenizer.json or spiece.model): {str(e).splitlines()[0]}"
        ) from None


def check_tokenizer(tokenizer, vocab_size: int, pad_id: int, folder: str | os.PathLike) -> None:
    """Refuse a tokenizer that does not match its model: ids past the model's embedding, or a
    padding id other than the model's."""
    if len(tokenizer) > vocab_size:
        raise TallmergeError(
            f"{folder}: its tokenizer has {len(tokenizer)} tokens but the model embeds only {vocab_size}"
        )
    if tokenizer.pad_token_id != pad_id or tokenizer.eos_token_id is None:
        raise TallmergeError(
            f"{folder}: its tokenizer pads with id {tokenizer.pad_token_id} (end of sequence "
            f"{tokenizer.eos_token_id}), the model with {pad_id}: not this model's tokenizer"
        )


def sentinel_ids(tokenizer) -> list[int]:
    """The ids of ``<extra_id_0>``, ``<extra_id_1>``, ... in the tokenizer, in order."""
    ids = []
    while True:
        token_id = tokenizer.convert_tokens_to_ids(sentinel(len(ids)))
        if token_id is None or token_id == tokenizer.unk_token_id:
            break
        ids.append(token_id)
    if not ids:
        raise TallmergeError("the tokenizer has no <extra_id_N> sentinels, so it cannot do span corruption")
    return ids


def save_tokenizer(tokenizer, folder: Path) -> None:
    tokenizer.save_pretrained(str(folder))
