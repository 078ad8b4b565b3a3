"""The gitops service."""
