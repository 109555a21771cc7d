"""shard_worker package."""
