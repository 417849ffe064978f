"""The configuration: `itsmd.yaml` validated against its JSON Schema and compiled to frozen objects."""

from itsmd.config.duration import parse_duration
from itsmd.config.loader import find_config, load_config
from itsmd.config.model import Config
from itsmd.config.secret import Secret

__all__ = ["Config", "Secret", "find_config", "load_config", "parse_duration"]
