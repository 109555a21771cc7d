"""Local Soroban RPC devnet with the SoroTask contract (see devnet/README.md).

``devnet.process.DevnetProcess`` runs it as a subprocess; ``devnet.cli.main`` is
``sorotask devnet``.
"""
