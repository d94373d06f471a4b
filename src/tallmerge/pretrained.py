"""Where a real CLIP's pre-trained weights come from: this machine, never the network by default.

``pretrained`` is either a path to a checkpoint file (open_clip's state-dict layout, as
safetensors or a torch file) or an open_clip pretrained tag (``openai``, ``laion2b_s34b_b79k``,
...; ``tallmerge models`` and open_clip's ``list_pretrained()`` list them). A tag is resolved to
the file open_clip would use, looked up in the local caches only:

- the Hugging Face hub cache (``HF_HUB_CACHE``, or ``cache_dir``) for the tag's ``hf_hub``
  repository: ``open_clip_model.safetensors``, else the repository's torch file;
- open_clip's URL cache (``~/.cache/clip``, or ``cache_dir``) for the tag's ``url`` file, except
  OpenAI's original TorchScript archives, which are programs rather than weights.

When the file is not there, a one-line error says which file to place where; only with
``allow_download`` does open_clip fetch it. Loading goes through open_clip's factory with the
tag's QuickGELU and preprocessing settings and ``weights_only`` torch loading (no unpickling of
code).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import open_clip
from open_clip import pretrained as registry
from torch import nn

from tallmerge.errors import TallmergeError

URL_CACHE = Path("~/.cache/clip")
_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")


def is_path(pretrained: str) -> bool:
    """A checkpoint path rather than a tag: it has a folder or a checkpoint file suffix."""
    return os.sep in pretrained or "/" in pretrained or pretrained.endswith(_SUFFIXES)


def _tag_config(arch: str, tag: str) -> dict:
    config = registry.get_pretrained_cfg(arch, tag)
    if not config:
        known = registry.list_pretrained_tags_by_model(arch)
        raise TallmergeError(
            f"model.pretrained: open_clip has no pretrained tag {tag!r} for {arch}"
            + (f" (it has: {', '.join(known)})" if known else " (it has none: give a checkpoint file path)")
        )
    return config


def _cached_hub_file(config: dict, cache_dir: str | os.PathLike | None) -> tuple[Path | None, str]:
    """The tag's Hugging Face file if cached, and a description of where it belongs."""
    from huggingface_hub import constants, try_to_load_from_cache

    repo, filename = os.path.split(config["hf_hub"])
    names = [registry.HF_SAFE_WEIGHTS_NAME] + ([filename] if filename else [registry.HF_WEIGHTS_NAME])
    for name in names:
        found = try_to_load_from_cache(repo, name, cache_dir=cache_dir)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found), ""
    cache = Path(cache_dir) if cache_dir else Path(constants.HF_HUB_CACHE)
    return None, f"{names[0]} of the Hugging Face repo {repo} in the hub cache {cache}"


def _cached_url_file(config: dict, cache_dir: str | os.PathLike | None) -> tuple[Path | None, str]:
    url = config["url"]
    if "openaipublic" in url:  # a TorchScript archive: not loaded, use the hub's safetensors
        return None, ""
    target = (Path(cache_dir) if cache_dir else URL_CACHE).expanduser() / os.path.basename(url)
    return (target, "") if target.is_file() else (None, f"{target.name} (from {url}) in {target.parent}")


def resolve(arch: str, pretrained: str, cache_dir: str | os.PathLike | None = None,
            allow_download: bool = False) -> Path:
    """The local checkpoint file for ``pretrained`` (a path or a tag); see the module doc."""
    if is_path(pretrained):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise TallmergeError(f"model.pretrained: checkpoint file not found: {path}")
        return path
    config = _tag_config(arch, pretrained)
    wanted = []
    for key, lookup in (("hf_hub", _cached_hub_file), ("url", _cached_url_file)):
        if config.get(key):
            found, where = lookup(config, cache_dir)
            if found is not None:
                return found
            if where:
                wanted.append(where)
    if allow_download:
        return Path(registry.download_pretrained(config, cache_dir=None if cache_dir is None else str(cache_dir)))
    raise TallmergeError(
        f"pretrained weights {pretrained!r} of {arch} are not on this machine: place "
        + " or ".join(wanted)
        + ", or set model.pretrained to a checkpoint file (nothing is downloaded unless allowed)"
    )


def load(arch: str, pretrained: str, cache_dir: str | os.PathLike | None = None,
         allow_download: bool = False) -> nn.Module:
    """The whole pre-trained CLIP (eval mode) from local weights."""
    path = resolve(arch, pretrained, cache_dir, allow_download)
    options: dict = {}
    if not is_path(pretrained):
        config = _tag_config(arch, pretrained)
        options["force_quick_gelu"] = bool(config.get("quick_gelu", False))
        options["force_preprocess_cfg"] = {k: config[k] for k in ("mean", "std") if k in config}
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        model = open_clip.create_model(arch, pretrained=str(path), weights_only=True, **options)
    except (RuntimeError, ValueError, KeyError, OSError) as e:
        raise TallmergeError(f"{path}: not a {arch} checkpoint ({' '.join(str(e).split())[:300]})") from None
    finally:
        logger.setLevel(level)
    return model.eval()
