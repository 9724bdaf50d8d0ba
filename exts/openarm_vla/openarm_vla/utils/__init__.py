"""Shared utilities: run configs, atomic file writes."""

from .config import Config, ConfigError, load_config, parse_cli, save_config
from .io import atomic_path, atomic_write_json, atomic_write_text
