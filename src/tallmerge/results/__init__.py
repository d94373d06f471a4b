"""Results: evaluating weights on the benchmark and the paper's selection rules
(:mod:`.evaluation`), the metrics contract (:mod:`.metrics`) and the report people read
(:mod:`.report`)."""
