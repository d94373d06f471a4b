"""The text model family: tokenizer, T5 factory and checkpoints, span corruption, fine-tuning and
rank classification, on tiny models."""

import random

import numpy as np
import pytest
import torch

from tallmerge.errors import TallmergeError
from tallmerge.params import TrainConfig
from tallmerge.text import t5
from tallmerge.text.rank import accuracy, choice_scores
from tallmerge.text.tasks import Example
from tallmerge.text.tokenizer import (
    build_tokenizer,
    check_tokenizer,
    load_tokenizer,
    save_tokenizer,
    sentinel_ids,
)
from tallmerge.text.train import corrupt, encode_examples, finetune_t5

WORDS = [f"w{i}" for i in range(40)] + ["yes", "no", "answer", ":", "?", "."]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(WORDS, 8)


def tiny_model(tokenizer, seed=0):
    config = t5.pocket_config("pocket-t5", len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id)
    config.num_layers = config.num_decoder_layers = 1
    config.d_model, config.d_ff, config.d_kv, config.num_heads = 64, 128, 16, 2
    return t5.create_t5(config, seed)


def test_tokenizer_keeps_t5_conventions_and_round_trips(tokenizer, tmp_path):
    ids = tokenizer(["w3 w4.", "answer: yes?"])["input_ids"]
    assert ids[0] == [tokenizer.convert_tokens_to_ids(w) for w in ("w3", "w4", ".")] + [1]
    assert len(ids[1]) == 5 and ids[1][-1] == tokenizer.eos_token_id == 1
    assert tokenizer.pad_token_id == 0 and tokenizer.unk_token_id == 2
    sentinels = sentinel_ids(tokenizer)
    assert len(sentinels) == 8 and sentinels[0] == len(tokenizer) - 1 and sentinels == sorted(sentinels)[::-1]
    save_tokenizer(tokenizer, tmp_path)
    again = load_tokenizer(tmp_path)
    assert again(["w3 w4.", "answer: yes?"])["input_ids"] == ids
    assert sentinel_ids(again) == sentinels


def test_tokenizer_refusals_name_the_folder(tokenizer, tmp_path):
    with pytest.raises(TallmergeError, match=str(tmp_path / "nothing")):
        load_tokenizer(tmp_path / "nothing")
    with pytest.raises(TallmergeError, match="embeds only 10"):
        check_tokenizer(tokenizer, 10, 0, "folder")
    with pytest.raises(TallmergeError, match="not this model's tokenizer"):
        check_tokenizer(tokenizer, len(tokenizer), 5, "folder")


def test_span_corruption_hides_spans_behind_sentinels():
    sentinels, eos = [100, 99, 98, 97], 1
    ids = list(range(10, 50))
    inputs, targets = corrupt(ids, sentinels, eos, np.random.default_rng(0))
    assert inputs[-1] == eos and targets[-1] == eos
    # putting each span back where its sentinel is gives the text again
    spans, current = {}, None
    for token in targets[:-1]:
        if token in sentinels:
            current = token
            spans[current] = []
        else:
            spans[current].append(token)
    rebuilt = [t for token in inputs[:-1] for t in (spans[token] if token in sentinels else [token])]
    assert rebuilt == ids
    hidden = sum(len(s) for s in spans.values())
    assert hidden == round(0.15 * len(ids)) and len(spans) == 2  # 6 tokens, spans of mean length 3
    again = corrupt(ids, sentinels, eos, np.random.default_rng(0))
    assert again == (inputs, targets)
    assert corrupt([7], sentinels, eos, np.random.default_rng(0)) == ([7, eos], [sentinels[0], eos])


def test_weights_are_every_float_tensor_once(tokenizer, tmp_path):
    model = tiny_model(tokenizer)
    state = t5.weights(model)
    assert "shared.weight" in state and "encoder.block.0.layer.0.SelfAttention.q.weight" in state
    assert "encoder.embed_tokens.weight" not in state and "decoder.embed_tokens.weight" not in state
    assert ("lm_head.weight" in state) == (model.lm_head.weight is not model.shared.weight)
    assert sum(v.numel() for v in state.values()) == sum(p.numel() for p in model.parameters())
    other = tiny_model(tokenizer, seed=1)
    t5.load_weights(other, state, "a.safetensors")
    assert all(torch.equal(v, t5.weights(other)[k]) for k, v in state.items())
    assert torch.equal(other.encoder.embed_tokens.weight, state["shared.weight"])  # still tied
    with pytest.raises(
        TallmergeError, match="a.safetensors: not a checkpoint of this T5 .lacks 'shared.weight'"
    ):
        t5.load_weights(other, {k: v for k, v in state.items() if k != "shared.weight"}, "a.safetensors")
    wrong = {**state, "shared.weight": torch.zeros(3, 3)}
    with pytest.raises(TallmergeError, match="'shared.weight' has shape"):
        t5.load_weights(other, wrong, "a.safetensors")


def test_a_sharded_hugging_face_folder_loads_as_its_weights(tokenizer, tmp_path):
    model = tiny_model(tokenizer)
    model.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    loaded = t5.from_folder(tmp_path)
    assert all(torch.equal(v, t5.weights(loaded)[k]) for k, v in t5.weights(model).items())
    with pytest.raises(TallmergeError, match="config.json: missing"):
        t5.from_folder(tmp_path / "elsewhere")
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(TallmergeError, match="not a T5"):
        t5.load_config(tmp_path)


def brute_force_scores(model, tokenizer, example, length_norm):
    """Each choice's log-likelihood from a separate forward pass, as the definition says."""
    x = torch.tensor([tokenizer(example.input)["input_ids"]])
    out = []
    for choice in example.choices:
        y = torch.tensor([tokenizer(choice)["input_ids"]])
        with torch.no_grad():
            logits = model(input_ids=x, labels=y).logits[0]
        logp = torch.log_softmax(logits, -1).gather(-1, y[0][:, None]).sum()
        out.append(float(logp / y.shape[1]) if length_norm else float(logp))
    return out


@pytest.mark.parametrize("length_norm", [False, True])
def test_rank_classification_scores_each_choice_by_its_likelihood(tokenizer, length_norm):
    model = tiny_model(tokenizer)
    examples = [
        Example("answer: w1 w2 ?", ("yes", "no"), 0),
        Example("w5 w6 w7 w8 w9 w10 .", ("w1 w2 w3", "no", "w4 : yes", "w7"), 2),
        Example("w3", ("w3 w3 w3 w3 w3", "w0"), 1),
    ]
    inputs, choices = encode_examples(tokenizer, examples, 64)
    for batch in (1, 3, 64):  # the batching does not change a score
        scores = choice_scores(model, inputs, choices, 0, length_norm, batch)
        for s, e in zip(scores, examples):
            assert s.tolist() == pytest.approx(brute_force_scores(model, tokenizer, e, length_norm), rel=1e-5)
    assert accuracy([torch.tensor([0.0, 1.0]), torch.tensor([2.0, 2.0])], [1, 0]) == 100.0  # ties: the first


def test_finetuning_learns_a_task_and_is_deterministic(tokenizer):
    rng = random.Random(0)

    def example():
        words = [f"w{rng.randrange(40)}" for _ in range(4)]
        label = rng.randrange(2)
        return Example(f"{' '.join(words)} answer: {('yes', 'no')[label]} .", ("yes", "no"), label)

    train, test = [example() for _ in range(200)], [example() for _ in range(100)]
    cfg = TrainConfig(steps=60, batch_size=16, lr=3e-3, weight_decay=0.0, warmup=6)
    inputs, choices = encode_examples(tokenizer, test, 64)
    labels = [e.label for e in test]
    model = tiny_model(tokenizer)
    before = accuracy(choice_scores(model, inputs, choices, 0, True, 64), labels)
    finetune_t5(model, tokenizer, train, cfg, seed=0, max_input=64, desc="test")
    after = accuracy(choice_scores(model, inputs, choices, 0, True, 64), labels)
    assert before < 70 and after == 100.0
    twin = tiny_model(tokenizer)
    finetune_t5(twin, tokenizer, train, cfg, seed=0, max_input=64, desc="test")
    assert all(torch.equal(v, t5.weights(twin)[k]) for k, v in t5.weights(model).items())


def test_long_inputs_are_truncated_keeping_the_end_token(tokenizer):
    inputs, choices = encode_examples(tokenizer, [Example(" ".join(["w1"] * 30), ("yes",), 0)], 8)
    assert len(inputs[0]) == 8 and inputs[0][-1] == tokenizer.eos_token_id
    assert choices == [[[tokenizer.convert_tokens_to_ids("yes"), tokenizer.eos_token_id]]]


def test_the_factory_refuses_an_unknown_architecture():
    with pytest.raises(TallmergeError, match="unknown T5 architecture 'pocket-t9'.*pocket-t5"):
        t5.pocket_config("pocket-t9", 100, 0, 1)
