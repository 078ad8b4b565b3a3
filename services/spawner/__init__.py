"""The spawner service."""
