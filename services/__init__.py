"""Mosaic services: each a package, run as its own process; they meet only in ``shared``."""
