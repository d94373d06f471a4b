"""CLIP models: open_clip architectures by name (:mod:`.models`, with the pocket configs in
``model_configs/``), zero-shot heads (:mod:`.heads`), pre-trained weights (:mod:`.pretrained`),
checkpoint import from other formats (:mod:`.convert`), training loops (:mod:`.train`) and the
device they run on (:mod:`.runtime`)."""
