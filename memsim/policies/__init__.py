"""Mapping policies: where every tensor lives, which unit runs each op, and what moves between tiers.

A policy is one module registered by name (:func:`register`); :func:`get_policy` builds one from its
name and parameters (validated like any config). Out-of-tree policies register through the entry-point
group ``memsim.policies`` (each entry point names a module that calls :func:`register` on import).
"""
from memsim.policies.base import Plan, Policy, Transfer, get_policy, known_policies, register

__all__ = ["Plan", "Policy", "Transfer", "get_policy", "known_policies", "register"]
