"""tech2u-mta: an SMTP server that answers mail as the TECH 2U policy says."""

from .catalogue import ENTRIES, Entry, R, Reply, render
from .config import Config
from .errors import ConfigError
from .policy import Policies, load_folder
from .server import Server

__all__ = [
    "ENTRIES",
    "Config",
    "ConfigError",
    "Entry",
    "Policies",
    "R",
    "Reply",
    "Server",
    "load_folder",
    "render",
]
__version__ = "0.1.0"
