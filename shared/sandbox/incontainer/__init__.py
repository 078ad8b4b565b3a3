"""Programs the docker backend runs *inside* an agent's container, as ``python3 -c``.

They are files (linted and type-checked like the rest) rather than strings in
``docker.py``; ``source(name)`` reads one for the ``-c`` argument. They use only the
standard library and syntax old enough for any environment image's ``python3``.
"""

from __future__ import annotations

from importlib import resources


def source(name: str) -> str:
    """The text of the in-container program ``name`` (``files`` or ``runner``)."""
    return resources.files(__name__).joinpath(f"{name}.py").read_text(encoding="utf-8")
