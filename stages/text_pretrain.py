"""Stage text-pretrain: theta_0 of the text benchmark, the pre-trained T5 every task starts from.

With `text.model.pretrained: null` (the pocket benchmark), a word-level tokenizer is built from the
pocket world's closed vocabulary and the pocket T5 is pre-trained by span corruption on a
generated corpus that states every pocket text concept in plain sentences (never in a task's
prompt format). Otherwise the T5 and its tokenizer come from that local Hugging Face folder
(`google/t5-large-lm-adapt`, as the paper, or any T5), nothing downloaded. Either way the
config and tokenizer go to models/text/pretrained/ and the weights, every float tensor once, to
models/text/pretrained.safetensors.
"""

import shutil

from tallmerge import layout
from tallmerge.errors import exit_on_error
from tallmerge.formats.files import save_tensors, temporary_dir
from tallmerge.text import pocket, t5
from tallmerge.text.tokenizer import build_tokenizer, check_tokenizer, load_tokenizer, sentinel_ids
from tallmerge.text.train import pretrain_t5
from tallmerge.text_params import TextParams

SENTINELS = 32  # span-corruption sentinels of the pocket tokenizer (a text has at most a few spans)


def main() -> None:
    text = TextParams.load()
    seed = text.seed
    if text.pretrained is not None:
        model = t5.from_folder(text.pretrained)
        tokenizer = load_tokenizer(text.pretrained)
        check_tokenizer(tokenizer, model.config.vocab_size, model.config.pad_token_id, text.pretrained)
    else:
        cfg = text.pretrain
        tokenizer = build_tokenizer(pocket.vocabulary(), SENTINELS)
        config = t5.pocket_config(text.arch, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id)
        model = t5.create_t5(config, seed).to(t5.device())
        texts = [ids[:-1] for ids in tokenizer(pocket.corpus(cfg.texts, seed))["input_ids"]]
        pretrain_t5(
            model, texts, sentinel_ids(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id, cfg, seed
        )

    with temporary_dir(layout.TEXT_MODEL) as folder:
        model.config.save_pretrained(folder)
        tokenizer.save_pretrained(str(folder))
        shutil.rmtree(layout.TEXT_MODEL, ignore_errors=True)
        folder.rename(layout.TEXT_MODEL)
    save_tensors(
        t5.weights(model), layout.TEXT_PRETRAINED, metadata={"arch": text.arch, "source": text.pretrained}
    )


if __name__ == "__main__":
    exit_on_error(main)
