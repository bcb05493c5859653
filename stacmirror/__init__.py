"""stacmirror: mirror Landsat Collection 2 from USGS M2M into a local STAC catalog."""

__version__ = "0.1.0"
