"""Price arithmetic: each kind of token at its own price, models by prefix, the default
price for an unknown model (and that it says so), settings from JSON and TOML."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.messages.spend import Spend, TaskBudget, TokenUsage
from shared.pricing import (
    DEFAULT_PRICES,
    UNKNOWN_MODEL_PRICE,
    ModelPrice,
    PriceSettings,
    PriceTable,
    PricingError,
)

pytestmark = pytest.mark.unit

SONNET = ModelPrice(input=3, output=15, cache_write=3.75, cache_read=0.3)


def usage(model: str, i: int = 0, o: int = 0, w: int = 0, r: int = 0) -> TokenUsage:
    return TokenUsage(
        model=model, input_tokens=i, output_tokens=o, cache_write_tokens=w, cache_read_tokens=r
    )


def test_each_kind_of_token_has_its_own_price() -> None:
    table = PriceTable({"claude-sonnet-4-5": SONNET}, UNKNOWN_MODEL_PRICE)
    cost = table.cost(usage("claude-sonnet-4-5", i=1000, o=2000, w=10_000, r=100_000))
    # 1000*3 + 2000*15 + 10000*3.75 + 100000*0.3 = 3000 + 30000 + 37500 + 30000 per million
    assert cost.usd == pytest.approx(100_500 / 1_000_000)
    assert cost.known
    only_reads = table.cost(usage("claude-sonnet-4-5", r=1_000_000))
    assert only_reads.usd == pytest.approx(0.3)


def test_a_dated_model_name_is_priced_by_its_longest_known_prefix() -> None:
    table = PriceSettings().table()
    opus45, known = table.price_of("claude-opus-4-5-20251101")
    assert known
    assert opus45 == DEFAULT_PRICES["claude-opus-4-5"]
    opus4, known = table.price_of("claude-opus-4-20250514")
    assert known
    assert opus4 == DEFAULT_PRICES["claude-opus-4"]
    assert opus45.input < opus4.input  # "claude-opus-4" must not swallow "claude-opus-4-5"
    _, known = table.price_of("claude-opus-4x")  # a prefix match needs a separator
    assert not known


def test_an_unknown_model_costs_the_default_price_never_zero() -> None:
    table = PriceSettings().table()
    cost = table.cost(usage("some-new-model", i=1_000_000))
    assert not cost.known
    assert cost.usd == pytest.approx(UNKNOWN_MODEL_PRICE.input)
    assert cost.usd > 0


def test_prices_and_the_default_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "MOSAIC_PRICES",
        '{"my-model": {"input": 1, "output": 2, "cacheWrite": 1.25, "cacheRead": 0.1}}',
    )
    monkeypatch.setenv(
        "MOSAIC_PRICE_DEFAULT", '{"input": 7, "output": 8, "cacheWrite": 9, "cacheRead": 1}'
    )
    table = PriceSettings().table()
    assert table.cost(usage("my-model-v2", o=1_000_000)).usd == pytest.approx(2)
    assert table.cost(usage("unheard-of", o=1_000_000)).usd == pytest.approx(8)
    assert table.price_of("claude-haiku-4-5")[1]  # the built-in table is still there


def test_prices_from_a_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        "[default]\ninput = 2\noutput = 4\ncacheWrite = 2.5\ncacheRead = 0.2\n"
        '[models."claude-sonnet-4-5"]\ninput = 6\noutput = 30\ncacheWrite = 7.5\ncacheRead = 0.6\n'
    )
    table = PriceSettings(MOSAIC_PRICES_FILE=str(path)).table()
    assert table.cost(usage("claude-sonnet-4-5-20250929", i=1_000_000)).usd == pytest.approx(6)
    assert table.cost(usage("other", i=1_000_000)).usd == pytest.approx(2)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("[models.x]\ninput = 1\n", "output"),
        ("[prices]\n", "unknown tables"),
        ("not toml = = =", "prices.toml"),
        ("[models.x]\ninput = -1\noutput = 1\ncacheWrite = 1\ncacheRead = 1\n", "input"),
    ],
)
def test_a_bad_price_file_is_refused_naming_the_problem(
    tmp_path: Path, content: str, words: str
) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(content)
    with pytest.raises(PricingError, match=words):
        PriceSettings(MOSAIC_PRICES_FILE=str(path)).table()


def test_a_price_with_an_unknown_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="cacheReads"):
        PriceSettings(
            MOSAIC_PRICES='{"m": {"input": 1, "output": 1, "cacheWrite": 1, "cacheReads": 1}}'
        )


def test_a_task_budget_is_reached_by_all_four_kinds_of_token() -> None:
    budget = TaskBudget(tokens=1000)
    below = Spend(
        input_tokens=100, output_tokens=100, cache_write_tokens=300, cache_read_tokens=499
    )
    assert budget.exceeded_by(below) is None
    at = below.model_copy(update={"cache_read_tokens": 500})
    assert budget.exceeded_by(at) == "task budget of 1000 tokens reached (1000 used)"
    dollars = TaskBudget(usd=0.5)
    assert dollars.exceeded_by(Spend(usd=0.4999)) is None
    assert "task budget of $0.5000 reached" in (dollars.exceeded_by(Spend(usd=0.5)) or "")


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({}, "budget needs tokens or usd"),
        ({"tokens": 0}, "tokens"),
        ({"usd": -1}, "usd"),
        ({"dollars": 3}, "dollars"),
        ({"tokens": "100"}, "tokens"),
    ],
)
def test_a_bad_budget_is_refused_naming_the_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        TaskBudget.model_validate(raw, strict=True)
