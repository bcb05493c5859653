"""An offline emulator of the USGS M2M API and its file hosts, backed by synthetic Landsat scenes."""

from .server import Emulator
from .state import Faults

DEMO_USERNAME = "demo"
DEMO_TOKEN = "demo-token"

__all__ = ["DEMO_TOKEN", "DEMO_USERNAME", "Emulator", "Faults"]
