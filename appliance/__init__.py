"""A photo-library appliance serving PictoPy's HTTP API from one process."""

__version__ = "0.1.0"
