"""The installed envship version, importable from anywhere without loading the package API."""

__version__ = "0.1.0"
