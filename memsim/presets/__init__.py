"""Preset data shipped with memsim.

``dram/*.yaml`` holds the DRAM-family presets (one file per standard family plus ``reference.yaml`` with
the exact configurations of the reference-simulator runs). They are package data, read through
``importlib.resources`` by :mod:`memsim.config.loader`; this package has no code of its own.
"""
