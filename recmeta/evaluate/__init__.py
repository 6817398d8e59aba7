"""Offline cold-start evaluation, exactly as PROTOCOL.md defines it."""

from recmeta.evaluate.protocol import EvalConfig, EvalResult, evaluate

__all__ = ["EvalConfig", "EvalResult", "evaluate"]
