"""Shared utilities: atomic file writes, nested-dict trees, learning-curve plots."""

from .io import atomic_path, atomic_write_json, atomic_write_text
