"""Settings of the gitops service (environment variables, built in the app factory)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class GitOpsSettings(BaseSettings):
    """Time limits and retry counts for git work."""

    model_config = SettingsConfigDict(env_prefix="GITOPS_", extra="ignore", case_sensitive=False)

    # Commands that talk to a remote (clone, fetch, push) may wait on the network.
    network_timeout: float = 120.0
    # Everything else is local disk work.
    local_timeout: float = 60.0
    # Worktree creation skips the fetch if this instance fetched the repository this
    # recently (a burst of agents on one repository); pushes always fetch.
    fetch_max_age: float = 2.0
    # Requests handled at once per subject (FastStream handles one at a time otherwise,
    # and a clone of one repository would hold up every other agent).
    max_concurrency: int = 32
    # How often a push rejected as non-fast-forward is re-checked and tried again.
    push_attempts: int = 3
