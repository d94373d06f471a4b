"""Merging fine-tuned checkpoints, streamed one state-dict entry at a time; works on safetensors
files and knows nothing of CLIP.

Lowest first: :mod:`.maths` (pure per-tensor functions), :mod:`.checkpoints` (the files, read and
validated), :mod:`.statistics` (whole-model passes), :mod:`.recipes` (how tau_MTL is formed),
:mod:`.executor` (vectors streamed into models), :mod:`.masks` (TALL mask files) and
:mod:`.methods` (the named merge methods).
"""
