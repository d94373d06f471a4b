"""Stage pretrain: theta_0, the pre-trained CLIP every task starts from.

With `model.pretrained: null` (the pocket benchmark), contrastive pre-training of the pocket CLIP
on the captioned web mix. The mix covers every concept of the pocket world (all pocket tasks,
not only the benchmark's), as a generic pre-training corpus would; the tasks later see those
concepts differently. Otherwise the real model's weights, from this machine only (an open_clip
tag found in the local caches, an open_clip checkpoint file, or a Hugging Face CLIPModel folder);
set TALLMERGE_ALLOW_DOWNLOAD=1 to let open_clip download a missing tag.
"""

import os

from tallmerge import layout
from tallmerge.clip import pretrained
from tallmerge.clip.models import create_clip, image_stats, save_clip, tokenizer
from tallmerge.clip.train import pretrain_clip
from tallmerge.errors import exit_on_error
from tallmerge.params import Params
from tallmerge.tasks.pocket import POCKET_TASKS
from tallmerge.tasks.web import caption_tokens, web_mix


def main() -> None:
    params = Params.load()
    arch = params.arch
    if params.pretrained is not None:
        allow = os.environ.get("TALLMERGE_ALLOW_DOWNLOAD") == "1"
        model = pretrained.load(arch, params.pretrained, allow_download=allow)
        save_clip(model, arch, layout.PRETRAINED_VISUAL, layout.PRETRAINED_TEXT)
        return
    cfg, seed = params.pretrain, params.seed
    model = create_clip(arch, seed)
    images, concepts, concept_list = web_mix(POCKET_TASKS, cfg.images, seed, cfg.web_variety)
    captions, counts = caption_tokens(concept_list, tokenizer(arch))
    pretrain_clip(model, images, concepts, captions, counts, *image_stats(model), cfg, seed)
    save_clip(model, arch, layout.PRETRAINED_VISUAL, layout.PRETRAINED_TEXT)


if __name__ == "__main__":
    exit_on_error(main)
