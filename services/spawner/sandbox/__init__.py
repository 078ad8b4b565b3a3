"""Where an agent's hands run: a hardened container (``docker``) or a process group (``local``)."""
