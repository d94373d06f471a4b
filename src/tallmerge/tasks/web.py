"""The pocket world's "web": the captioned image mix the pocket CLIP is pre-trained on.

Like CLIP's web data, it covers every concept of the pocket world but not the way the tasks
show them: each pocket task's ``web`` split is a cleaner, differently distributed variant. A
caption is one of the task's templates filled with the class name, drawn anew at every step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from tallmerge.tasks.registry import WEB_SPLIT, get_task


def web_mix(
    task_names: Sequence[str], n: int, seed: int, variety: float
) -> tuple[torch.Tensor, torch.Tensor, list[tuple[str, str]]]:
    """``n`` web images from the given tasks (as balanced as n allows), shuffled; a share
    ``variety`` of each task's images shows its concepts in the task's own varied style (for the
    tasks whose web has one), the rest in their clean canonical look.

    Returns ``(images, concepts, concept_list)``: image ``i`` shows ``concept_list[concepts[i]]``,
    a ``(task, classname)`` pair.
    """
    images, concepts, concept_list = [], [], []
    for i, name in enumerate(task_names):
        task = get_task(name)
        count = n // len(task_names) + (i < n % len(task_names))
        x, y = task.generate(WEB_SPLIT, count, seed, web_variety=variety)
        images.append(x)
        concepts.append(y + len(concept_list))
        concept_list += [(name, c) for c in task.classnames]
    order = np.random.default_rng(seed).permutation(n)
    images = torch.from_numpy(np.concatenate(images)[order])
    concepts = torch.from_numpy(np.concatenate(concepts)[order].astype(np.int64))
    return images, concepts, concept_list


def caption_tokens(concept_list: Sequence[tuple[str, str]], tokenize) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenised captions per concept: ``captions [C, T_max, L]`` and ``counts [C]``."""
    per_concept = [tokenize([t.format(c) for t in get_task(task).templates]) for task, c in concept_list]
    t_max = max(len(t) for t in per_concept)
    captions = torch.zeros(len(per_concept), t_max, per_concept[0].shape[1], dtype=torch.long)
    for i, tokens in enumerate(per_concept):
        captions[i, : len(tokens)] = tokens
    counts = torch.tensor([len(t) for t in per_concept])
    return captions, counts
