"""The bottom layer: Stellar and SoroTask encodings and project-wide registries; imports nothing of ours."""
