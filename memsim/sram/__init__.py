"""On-chip SRAM scratchpad tier: config (:mod:`.config`), jitted bank-conflict kernel (:mod:`.kernel`),
Python API with capacity enforcement (:mod:`.api`), validation cases and CLI."""
