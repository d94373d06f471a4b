"""The paper's storage accounting (Wang et al., ICML 2024): what T models of a real CLIP or T5
would take on disk as the paper counts them, for comparison with the stores built here."""

from __future__ import annotations

PAPER_MODELS = {  # merged parameters, parameters kept once as they are (CLIP's text side)
    "ViT-B-32": (87_849_216, 25_599_489),
    "ViT-L-14": (303_966_208, 38_595_841),
    # T5-large-LM-adapt (T5 v1.1 large, its output projection a matrix of its own): 783,150,080
    # weights, all merged; the paper's table counts 25.1 Gbit for it (783 M x 32 bits)
    "T5-large-lm-adapt": (783_150_080, 0),
}
SHORT_NAMES = {"ViT-B-32": "vit_b32", "ViT-L-14": "vit_l14", "T5-large-lm-adapt": "t5_large"}


def projections(models: list[tuple[str, int]], vector_bits: float, mask_bits: float) -> dict[str, float]:
    """Projected store sizes and overheads (Gbit) for each ``(paper model, tasks)``, keyed as in
    ``metrics/compression.json``: all the totals first, then all the overheads."""
    out = {}
    for arch, tasks in models:
        key = f"{SHORT_NAMES[arch]}_{tasks}tasks"
        out[f"projected_gbit_{key}"] = round(projected_gbit(arch, tasks, vector_bits, mask_bits), 3)
    for arch, tasks in models:
        key = f"{SHORT_NAMES[arch]}_{tasks}tasks"
        out[f"projected_overhead_gbit_{key}"] = round(overhead_gbit(arch, tasks, vector_bits, mask_bits), 3)
    return out


def projected_gbit(arch: str, tasks: int, vector_bits: float, mask_bits: float) -> float:
    """Storage in Gbit (1e9 bits) of ``tasks`` models of ``arch`` kept as the paper counts them:
    the full fp32 zero-shot model (visual + text side) + one merged vector over the visual
    encoder at ``vector_bits`` per weight + ``tasks`` masks at ``mask_bits`` per weight."""
    visual, text = PAPER_MODELS[arch]
    return (visual + text) * 32 / 1e9 + overhead_gbit(arch, tasks, vector_bits, mask_bits)


def overhead_gbit(arch: str, tasks: int, vector_bits: float, mask_bits: float) -> float:
    """What :func:`projected_gbit` adds to the fp32 zero-shot model: the vector and the masks."""
    visual, _ = PAPER_MODELS[arch]
    return visual * (vector_bits + tasks * mask_bits) / 1e9


def finetuned_gbit(arch: str, tasks: int) -> float:
    """The fine-tuned checkpoints in the same accounting: text side once + T fp32 visual encoders."""
    visual, text = PAPER_MODELS[arch]
    return (text + tasks * visual) * 32 / 1e9
