"""The gate's statistics and SPEC parsing on synthetic repetitions (they test arithmetic, not a model)."""

from __future__ import annotations

import math

import pytest

from ttsload.bench.analysis import stats
from ttsload.bench.errors import UsageError
from ttsload.bench.regression.gate import Rule, judge, parse_spec

TEN_PERCENT = Rule("cold_start_s", "median", 10.0, relative=True)


def test_spec_items_parse_with_direction_and_kind():
    rules = parse_spec("cold_start_s:median:+10%, pss_mb:max:5%,leak_mb_per_1k:max:2,rps:mean:-3%")
    assert [str(r) for r in rules] == ["cold_start_s:median:+10%", "pss_mb:max:+5%", "leak_mb_per_1k:max:+2",
                                       "rps:mean:-3%"]
    assert [r.relative for r in rules] == [True, True, False, True]
    assert [r.higher_is_worse for r in rules] == [True, True, True, False]


@pytest.mark.parametrize("spec", ["", "cold_start_s", "cold_start_s:median", "a:median:+x%", "a:median:10%%",
                                  "a:p99:+1%", "a b:median:1"])
def test_malformed_spec_items_are_usage_errors(spec):
    with pytest.raises(UsageError, match="bad --fail item"):
        parse_spec(spec)


def test_identical_repetitions_are_ok():
    check = judge(TEN_PERCENT, [3.0, 3.1, 2.9], [3.0, 3.1, 2.9])
    assert check.verdict == "ok" and check.change == 0


def test_a_clear_shift_beyond_the_threshold_regresses():
    check = judge(TEN_PERCENT, [3.0, 3.1, 2.9, 3.05, 2.95], [4.0, 4.1, 3.9])
    assert check.verdict == "REGRESSION"
    assert check.change == pytest.approx(100 * (4.0 - 3.0) / 3.0)
    assert check.p_value == pytest.approx(1 / 56)  # exact: the 3 current values rank above all 5 baseline ones


def test_a_shift_within_the_threshold_is_ok_even_when_significant():
    check = judge(TEN_PERCENT, [3.0, 3.01, 3.02, 3.03], [3.2, 3.21, 3.22])
    assert check.verdict == "ok" and check.p_value < 0.05


def test_a_median_moved_by_overlapping_noise_is_not_significant():
    check = judge(TEN_PERCENT, [3.0, 4.0, 3.1], [3.9, 3.5, 2.9])
    assert check.change > 10 and check.verdict == "not significant"


def test_too_few_repetitions_are_never_judged():
    check = judge(TEN_PERCENT, [3.0, 3.0], [9.0, 9.0, 9.0])
    assert check.verdict == "insufficient repetitions" and check.p_value is None
    assert check.change == pytest.approx(200)  # still shown
    assert judge(TEN_PERCENT, [], [1.0, 1.0, 1.0]).verdict == "COULD NOT JUDGE"  # nothing at all: fails closed


def test_lower_is_worse_and_absolute_rules():
    throughput = parse_spec("rps:median:-10%")[0]
    assert judge(throughput, [10, 10.2, 9.9], [7, 7.1, 6.9]).verdict == "REGRESSION"
    assert judge(throughput, [10, 10.2, 9.9], [13, 13.1, 12.9]).verdict == "improved"
    leak = parse_spec("leak:max:2")[0]
    assert judge(leak, [0.1, 0.3, 0.2], [1.5, 1.9, 1.7]).verdict == "ok"
    assert judge(leak, [0.1, 0.3, 0.2], [3.5, 3.9, 3.7]).verdict == "REGRESSION"


def test_a_zero_baseline_gives_an_infinite_relative_change():
    check = judge(parse_spec("x:median:+5%")[0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    assert math.isinf(check.change) and check.verdict == "REGRESSION"


def test_p_worse_is_one_sided_and_rank_based():
    low, high = [1.0, 1.1, 1.2, 1.3], [2.0, 2.1, 2.2, 50.0]
    assert stats.p_worse(high, low) < 0.05 < stats.p_worse(low, high)
    assert stats.p_worse(low, high, higher_is_worse=False) < 0.05
    assert stats.p_worse([2.0, 2.0, 2.0], [2.0, 2.0, 2.0]) == 1.0


def test_bootstrap_interval_brackets_the_median_and_is_reproducible():
    values = [3.0, 3.4, 2.9, 3.1, 3.3]
    low, high = stats.bootstrap_interval(values)
    assert low <= stats.median(values) <= high
    assert stats.bootstrap_interval(values) == (low, high)
    assert stats.bootstrap_interval([1.0]) is None
    assert stats.bootstrap_interval([2.0, 2.0]) == (2.0, 2.0)
