"""memsim: a discrete-event, cycle-approximate simulator of the memory system behind LLM inference.

The DRAM/HBM engine lives in :mod:`memsim.dram`, configuration in :mod:`memsim.config`, traces in
:mod:`memsim.traces` and the reference catalogue in :mod:`memsim.validate`.
"""
__version__ = "0.1.0"
