"""SoroTask keeper: shared domain modules and the ``sorotask`` command line."""

__version__ = "0.1.0"
