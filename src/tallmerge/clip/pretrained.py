"""Where a real CLIP's pre-trained weights come from: this machine, never the network by default.

``pretrained`` is one of

- a path to a checkpoint file in open_clip's state-dict layout (safetensors or a torch file);
- a Hugging Face ``transformers`` ``CLIPModel`` checkpoint (e.g. a download of
  ``openai/clip-vit-base-patch32``, the base of the public per-task fine-tuned CLIPs): its folder
  (holding ``config.json`` and ``model.safetensors`` or ``pytorch_model.bin``) or the weights file
  itself. It is recognised by its keys (``vision_model.*``, ``text_model.*``), read safely
  (:mod:`tallmerge.formats.safeload` for torch files) and converted by
  :func:`tallmerge.clip.convert.convert_hf_clip_model` (image and text towers, projections, logit
  scale), checked key by key and shape by shape against the arch. The arch's activation must be
  the checkpoint's (``hidden_act`` in ``config.json``; transformers' default, quick_gelu, where
  unset or without a ``config.json``): OpenAI's CLIPs and their fine-tunes use quick_gelu, so
  their arch is a ``-quickgelu`` one (``ViT-B-32-quickgelu`` for ``openai/clip-vit-base-patch32``);
  a mismatch is a one-line error naming the arch to use;
- an open_clip pretrained tag (``openai``, ``laion2b_s34b_b79k``, ...; ``tallmerge models`` and
  open_clip's ``list_pretrained()`` list them). A tag is resolved to the file open_clip would
  use, looked up in the local caches only:

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

import json
import logging
import os
from pathlib import Path

import open_clip
import torch
from open_clip import pretrained as registry
from torch import nn

from tallmerge.clip.convert import convert_hf_clip_model, hf_weights_in, is_hf_clip
from tallmerge.clip.models import create_clip
from tallmerge.errors import TallmergeError, one_line
from tallmerge.formats import safeload
from tallmerge.formats.files import load_tensors, open_tensors

URL_CACHE = Path("~/.cache/clip")
_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
HF_CONFIG = "config.json"
HF_DEFAULT_ACT = "quick_gelu"
"""transformers' CLIP configs' default ``hidden_act`` (saved configs may leave it out)."""


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


def resolve(
    arch: str, pretrained: str, cache_dir: str | os.PathLike | None = None, allow_download: bool = False
) -> Path:
    """The local checkpoint file for ``pretrained`` (a file, a Hugging Face model folder or a
    tag); see the module doc."""
    if is_path(pretrained):
        path = Path(pretrained).expanduser()
        if path.is_dir():
            try:
                return hf_weights_in(path)
            except TallmergeError as e:
                raise TallmergeError(f"model.pretrained: {e}") from None
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
        return Path(
            registry.download_pretrained(config, cache_dir=None if cache_dir is None else str(cache_dir))
        )
    raise TallmergeError(
        f"pretrained weights {pretrained!r} of {arch} are not on this machine: place "
        + " or ".join(wanted)
        + ", or set model.pretrained to a checkpoint file (nothing is downloaded unless allowed)"
    )


def load(
    arch: str, pretrained: str, cache_dir: str | os.PathLike | None = None, allow_download: bool = False
) -> nn.Module:
    """The whole pre-trained CLIP (eval mode) from local weights: an open_clip checkpoint or tag,
    or a Hugging Face CLIPModel checkpoint converted to open_clip (see the module doc)."""
    path = resolve(arch, pretrained, cache_dir, allow_download)
    if is_path(pretrained) and (state := _hf_state(path)) is not None:
        return _load_hf(arch, state, path)
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


def _hf_state(path: Path) -> dict[str, torch.Tensor] | None:
    """The tensors of ``path`` if it is a Hugging Face CLIP checkpoint; None for any other file
    (left to open_clip's loader, which says what is wrong with it)."""
    if path.suffix == ".safetensors":
        try:
            with open_tensors(path) as f:
                hf = is_hf_clip(f.keys())
        except TallmergeError:
            return None
        return load_tensors(path)[0] if hf else None
    try:
        state = safeload.load_state_dict(path)
    except TallmergeError:
        return None
    return state if is_hf_clip(state) else None


def _load_hf(arch: str, state: dict[str, torch.Tensor], path: Path) -> nn.Module:
    """An open_clip ``arch`` CLIP holding a Hugging Face CLIPModel checkpoint's weights."""
    _check_activation(arch, path)
    whole = convert_hf_clip_model(state, arch, str(path))
    model = create_clip(arch)
    model.load_state_dict(whole, strict=True)
    return model.eval()


def _check_activation(arch: str, path: Path) -> None:
    """The HF checkpoint's activation must be the arch's (quick_gelu or gelu), else a one-line
    error naming the arch to use. Unknown archs are left to the model factory's error."""
    config = open_clip.get_model_config(arch)
    if config is None:
        return
    act, where = _hf_activation(path.parent / HF_CONFIG)
    quick = bool(config.get("quick_gelu", False))
    if act == ("quick_gelu" if quick else "gelu"):
        return
    if act == "quick_gelu":
        other = f"{arch}-quickgelu"
        hint = (
            f"set model.arch to {other}"
            if other in open_clip.list_models()
            else "use an arch with quick_gelu: true"
        )
    elif act == "gelu":
        other = arch.removesuffix("-quickgelu")
        hint = (
            f"set model.arch to {other}"
            if other != arch and other in open_clip.list_models()
            else "use an arch without quick_gelu"
        )
    else:
        hint = "open_clip CLIPs use quick_gelu or gelu only"
    raise TallmergeError(
        f"{path}: a Hugging Face CLIP with {act} activations ({where}), but {arch} uses "
        f"{'quick_gelu' if quick else 'gelu'}: {hint}"
    )


def _hf_activation(config_path: Path) -> tuple[str, str]:
    """``(hidden_act of the HF CLIP's towers, where it comes from)``: from ``config.json`` (whole
    CLIPModel or one tower's config), else transformers' default."""
    if not config_path.is_file():
        return HF_DEFAULT_ACT, f"transformers' default, no {HF_CONFIG} beside it"
    try:
        config = json.loads(config_path.read_text())
        towers = [
            t for t in (config.get("text_config"), config.get("vision_config")) if isinstance(t, dict)
        ] or [config]
        acts = sorted({t.get("hidden_act", HF_DEFAULT_ACT) for t in towers})
    except (OSError, ValueError, AttributeError, TypeError) as e:
        raise TallmergeError(f"{config_path}: not a readable Hugging Face config ({one_line(e)})") from None
    if len(acts) > 1:
        raise TallmergeError(
            f"{config_path}: its towers use different activations ({', '.join(acts)}), which no open_clip arch does"
        )
    return acts[0], f"hidden_act in {config_path}"
