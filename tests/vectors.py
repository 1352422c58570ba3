"""The one loader for the test-vector files (kept apart from behaviour tests).

The vectors live in ``tests/vectors/`` inside the repository, so a fresh clone with nothing
beside it runs the suite. A missing file is an error that says where it looked, never a
silently empty parametrisation.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

VECTORS_DIR = Path(__file__).resolve().parent / "vectors"


def vectors_path(name: str) -> Path:
    """Return the path of a vector file, failing clearly if it is not in ``tests/vectors/``."""
    path = VECTORS_DIR / name
    if not path.is_file():
        raise FileNotFoundError(
            f"test vectors not found at {path}: tests/vectors/ is part of the repository"
        )
    return path


@cache
def load_vectors(name: str) -> tuple[dict[str, Any], ...]:
    """Load a JSON list of vector entries; refuses an empty or malformed file."""
    data = json.loads(vectors_path(name).read_text(encoding="utf-8"))
    if not isinstance(data, list) or not data or not all(isinstance(e, dict) for e in data):
        raise ValueError(f"{name} must hold a non-empty JSON list of objects")
    return tuple(data)


def rfc_vectors(kind: str | None = None) -> list[dict[str, Any]]:
    """The RFC 4226 / RFC 6238 vectors, optionally only one ``type`` (``hotp``/``totp``)."""
    entries = load_vectors("rfc_vectors.json")
    return [e for e in entries if kind is None or e["type"] == kind]


def vector_id(entry: dict[str, Any]) -> str:
    """A readable pytest id for one vector."""
    where = f"c{entry['counter']}" if entry["type"] == "hotp" else f"t{entry['time']}"
    return f"{entry['type']}-{entry['algorithm']}-{entry['digits']}d-{where}"
