"""Configuration: read a YAML or JSON file, validate it, normalise it.

``load(path)`` is what ``dakia-master check``, a start and a reload call; ``validate``
serves configs that do not come from a file (the REST controller). Both return the
normalised config (every default filled, paths absolute, names resolved) and the notices,
or raise :class:`ConfigError` with every problem found, each located by its path.
"""
from .errors import ConfigError
from .source import load_source
from .validate import dump_normalised, load, validate

__all__ = ["ConfigError", "load_source", "validate", "load", "dump_normalised"]
