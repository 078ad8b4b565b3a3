"""Killswitch errors."""

from __future__ import annotations

from shared.errors import MosaicError


class KillswitchError(MosaicError):
    """Something the killswitch could not do (a sandbox it could not reach)."""

    code = "killswitch_error"
