"""SoroTask keeper, the top layer: the ``sorotask`` command line, the demo and the tools."""

__version__ = "0.1.0"
