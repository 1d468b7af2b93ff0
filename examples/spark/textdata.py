"""The example's data and a helper, in a plain module next to the job script."""

from __future__ import annotations

__all__ = ["CORPUS", "normalize"]

CORPUS = [
    ("poetry", "Shall I compare thee to a summer's day"),
    ("poetry", "Thou art more lovely and more temperate"),
    ("poetry", "Rough winds do shake the darling buds of May"),
    ("science", "Energy equals mass times the speed of light squared"),
    ("science", "Entropy of an isolated system never decreases"),
    ("science", "Every action has an equal and opposite reaction"),
    ("code", "Ship the environment once and run it everywhere"),
    ("code", "Content addressed layers make uploads incremental"),
]


def normalize(line: str) -> str:
    """Lower-case, drop punctuation: what the UDFs score."""
    return "".join(c for c in line.lower() if c.isalnum() or c.isspace())
