"""tradelane: a self-hosted marketplace integration hub."""

__version__ = "0.1.0"
