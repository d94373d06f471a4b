"""The paper's storage accounting (Wang et al., ICML 2024): what T models of a real CLIP would
take on disk as the paper counts them, for comparison with the stores built here."""

from __future__ import annotations

PAPER_MODELS = {  # visual-encoder parameters, text-side parameters (embedding and projection)
    "ViT-B-32": (87_849_216, 25_599_489),
    "ViT-L-14": (303_966_208, 38_595_841),
}


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
