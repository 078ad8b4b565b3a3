"""What a model call costs: a per-model price table (settings) applied to reported usage.

Prices are US dollars per million tokens, one price per kind of token, because the API
bills them differently: uncached input, output, cache writes (the 5-minute cache the
agents use, 1.25 times input) and cache reads (a tenth of input). A model is found by
the longest table entry its name starts with, so ``claude-sonnet-4-5-20250929`` is priced
as ``claude-sonnet-4-5``. A model the table does not know is priced at the default
price (by default the most expensive current model's, so a budget errs on stopping
early) and the result says so: never a silent $0.

The table comes from ``MOSAIC_PRICES`` (JSON) or ``MOSAIC_PRICES_FILE`` (TOML), merged
over the built-in table::

    MOSAIC_PRICES='{"claude-sonnet-4-5":
      {"input": 3, "output": 15, "cacheWrite": 3.75, "cacheRead": 0.3}}'

    # prices.toml
    [default]
    input = 15
    output = 75
    cacheWrite = 18.75
    cacheRead = 1.5
    [models."claude-haiku-4-5"]
    input = 1
    output = 5
    cacheWrite = 1.25
    cacheRead = 0.1
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.errors import MosaicError
from shared.messages.base import Message
from shared.messages.spend import TokenUsage

PerMillion = Annotated[float, Field(ge=0, le=100_000)]


class ModelPrice(Message):
    """US dollars per million tokens of each kind."""

    input: PerMillion
    output: PerMillion
    cache_write: PerMillion
    cache_read: PerMillion


def _price(input: float, output: float, cache_write: float, cache_read: float) -> ModelPrice:
    return ModelPrice(input=input, output=output, cache_write=cache_write, cache_read=cache_read)


DEFAULT_PRICES: dict[str, ModelPrice] = {
    "claude-opus-4-5": _price(5, 25, 6.25, 0.5),
    "claude-opus-4-1": _price(15, 75, 18.75, 1.5),
    "claude-opus-4": _price(15, 75, 18.75, 1.5),
    "claude-sonnet-4-5": _price(3, 15, 3.75, 0.3),
    "claude-sonnet-4": _price(3, 15, 3.75, 0.3),
    "claude-3-7-sonnet": _price(3, 15, 3.75, 0.3),
    "claude-haiku-4-5": _price(1, 5, 1.25, 0.1),
    "claude-3-5-haiku": _price(0.8, 4, 1, 0.08),
    "claude-3-haiku": _price(0.25, 1.25, 0.3, 0.03),
}
"""Anthropic's list prices (standard context, 5-minute cache writes)."""

UNKNOWN_MODEL_PRICE = _price(15, 75, 18.75, 1.5)
"""What a model missing from the table costs unless ``MOSAIC_PRICE_DEFAULT`` says."""


class PricingError(MosaicError):
    """The price settings cannot be read; a service refuses to start rather than guess."""

    code = "bad_prices"


@dataclass(frozen=True)
class Cost:
    """A call's price and whether the table knew its model (``False``: priced at the
    default price, which operators are told about)."""

    usd: float
    known: bool


class PriceTable:
    """Prices by model name (longest matching prefix) with a default for the rest."""

    def __init__(self, prices: dict[str, ModelPrice], default: ModelPrice) -> None:
        self._prices = dict(prices)
        self._names = sorted(self._prices, key=len, reverse=True)
        self.default = default

    def price_of(self, model: str) -> tuple[ModelPrice, bool]:
        """The model's price and whether the table knew it."""
        for name in self._names:
            if model == name or model.startswith((name + "-", name + "@")):
                return self._prices[name], True
        return self.default, False

    def cost(self, usage: TokenUsage) -> Cost:
        """What ``usage`` costs, each kind of token at its own price."""
        price, known = self.price_of(usage.model)
        usd = (
            usage.input_tokens * price.input
            + usage.output_tokens * price.output
            + usage.cache_write_tokens * price.cache_write
            + usage.cache_read_tokens * price.cache_read
        ) / 1_000_000
        return Cost(usd=usd, known=known)


class PriceSettings(BaseSettings):
    """``MOSAIC_PRICES`` (JSON), ``MOSAIC_PRICES_FILE`` (TOML), ``MOSAIC_PRICE_DEFAULT``
    (JSON): entries override the built-in table by model name."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    mosaic_prices: dict[str, ModelPrice] = {}
    mosaic_prices_file: Path | None = None
    mosaic_price_default: ModelPrice | None = None

    @field_validator("mosaic_prices_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    def table(self) -> PriceTable:
        """The built-in table, then the file's entries, then ``MOSAIC_PRICES``'s."""
        prices = dict(DEFAULT_PRICES)
        default = UNKNOWN_MODEL_PRICE
        if self.mosaic_prices_file is not None:
            models, file_default = _read_file(self.mosaic_prices_file)
            prices |= models
            default = file_default or default
        prices |= self.mosaic_prices
        return PriceTable(prices, self.mosaic_price_default or default)


def _read_file(path: Path) -> tuple[dict[str, ModelPrice], ModelPrice | None]:
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PricingError(f"MOSAIC_PRICES_FILE {path}: {exc}") from exc
    unknown = set(data) - {"models", "default"}
    if unknown:
        raise PricingError(
            f"MOSAIC_PRICES_FILE {path}: unknown tables {sorted(unknown)} (use [models.<name>] "
            "and [default])"
        )
    try:
        models = {name: ModelPrice.model_validate(v) for name, v in data.get("models", {}).items()}
        default = ModelPrice.model_validate(data["default"]) if "default" in data else None
    except ValidationError as exc:
        raise PricingError(f"MOSAIC_PRICES_FILE {path}: {exc}") from exc
    return models, default
