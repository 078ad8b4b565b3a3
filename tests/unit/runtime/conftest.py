"""Unit tests of the runtime use the in-memory sandbox and the scripted provider."""
