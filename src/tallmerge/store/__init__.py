"""The compressed multi-task store: T fine-tuned models as theta_0 + one merged vector + T masks.

:mod:`.manifest` (the format and its checks), :mod:`.codec` (vector and mask coding),
:mod:`.build` (:func:`~.build.compress`), :mod:`.reader` (:class:`~.reader.Store`) and
:mod:`.accounting` (the paper's storage accounting).
"""
