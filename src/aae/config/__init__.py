"""A run's config: typed sections read from TOML, checked key by key, documented from the fields."""

from .load import from_dict, load_config
from .schema import ExperimentConfig

__all__ = ["ExperimentConfig", "from_dict", "load_config"]
