"""Files on disk, the lowest layer above :mod:`tallmerge.errors`: atomic writes, temporaries and
locks, JSON and CSV (:mod:`.files`); safetensors read and written one tensor at a time
(:mod:`.tensorfile`); torch checkpoints read without unpickling code (:mod:`.safeload`)."""
