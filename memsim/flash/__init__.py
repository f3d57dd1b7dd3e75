"""NAND flash / SSD tier: config (:mod:`.config`), jitted queueing kernel (:mod:`.kernel`), Python API
(:mod:`.api`), validation cases (:mod:`.validation`) and CLI (:mod:`.cli`)."""
