"""srbench: MATLAB-exact super-resolution metrics under named protocols."""

__version__ = "0.1.0"
