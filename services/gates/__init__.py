"""The gates service."""
