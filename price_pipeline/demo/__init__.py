"""Bundled offline demo: a PRA-style hospital catalog service and its committed MRF files.

``price_pipeline.demo.server`` serves ``data/catalog.json`` and ``data/files/*`` over HTTP on
127.0.0.1 so the whole pipeline (catalog -> download -> parse -> warehouse) runs without the
internet. The data is package data: :func:`data_dir` locates it in a checkout or an install.
"""

from __future__ import annotations

import json
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"


def data_dir() -> Path:
    """Folder holding ``catalog.json`` and ``files/`` (shipped as package data)."""
    return DATA_DIR


def load_catalog() -> list[dict]:
    """The demo hospitals as stored in ``catalog.json`` (file entries carry ``name``, not ``url``).

    Each hospital also has a ``demo`` block (cms_version, layout, expect) describing what the
    pipeline should make of its file; the HTTP server does not publish it.
    """
    doc = json.loads((DATA_DIR / "catalog.json").read_text(encoding="utf-8"))
    return doc["hospitals"]
