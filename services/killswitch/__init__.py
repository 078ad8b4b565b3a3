"""The killswitch service."""
