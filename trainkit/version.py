"""trainkit's version, in a module of its own: low layers read it without importing the package's API facade."""

__version__ = "0.1.0"
