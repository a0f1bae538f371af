"""The soak's 1-minute version: 100 documents/s of real news through the streaming pipeline."""

from __future__ import annotations

import pytest

from benchmarks.soak import run_soak
from khabar.config import KhabarConfig

pytestmark = pytest.mark.integration


def test_one_minute_soak_loses_nothing_and_catches_up(isolated_config: KhabarConfig) -> None:
    result = run_soak(isolated_config, rate=100, seconds=60, catch_up_timeout=900)
    print(f"\nsoak: {result}")
    assert result["produced"] == 6000
    assert result["lag_at_end"] == 0
    assert result["indexed"] == result["distinct_ids_indexed"]
    assert result["missing"] == 0 and result["unexpected"] == 0
    assert result["indexed"] + result["dead_lettered"] == result["produced"]
    assert result["duplicated"] == 0
