"""srbench's version (bottom level: the modules that record it in their outputs import nothing above them)."""

__version__ = "0.1.0"
