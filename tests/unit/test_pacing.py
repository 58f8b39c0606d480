"""Provider pacing (GCRA) as properties: no window ever holds more than the rate allows."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patient_notify.domain.pacing import Rate, Turn, next_turn, send_at_for

rates = st.builds(Rate, st.floats(min_value=0.5, max_value=200), st.integers(min_value=1, max_value=10))
# Arrival gaps in seconds: bursts (0), crowds (tiny), and quiet spells.
gaps = st.lists(st.one_of(st.just(0.0), st.floats(min_value=0, max_value=0.01), st.floats(min_value=0, max_value=5)),
                min_size=1, max_size=150)  # fmt: skip
EPSILON = 1e-9


def _schedule(rate: Rate, arrivals: list[float], max_wait_s: float | None = None) -> list[Turn]:
    """The turns granted, in order, to callers arriving at ``arrivals``."""
    return [turn for _, turn in _granted(rate, arrivals, max_wait_s)]


def _granted(rate: Rate, arrivals: list[float], max_wait_s: float | None) -> list[tuple[float, Turn]]:
    """(arrival, turn) for each caller granted a turn; a refused one leaves the schedule as it was."""
    next_at: float | None = None
    granted = []
    for now in arrivals:
        turn = next_turn(next_at, now, rate)
        if max_wait_s is not None and turn.wait_s(now) > max_wait_s:
            continue
        granted.append((now, turn))
        next_at = turn.next_at
    return granted


class TestTurns:
    @given(rates, gaps)
    def test_turns_are_spaced_by_the_rate_beyond_the_burst(self, rate: Rate, gaps: list[float]) -> None:
        """Any two turns i < j are at least (j - i - (burst - 1)) intervals apart."""
        sends = [t.send_at for t in _schedule(rate, list(itertools.accumulate(gaps)))]
        for i, j in itertools.combinations(range(len(sends)), 2):
            assert sends[j] - sends[i] >= (j - i - (rate.burst - 1)) * rate.interval_s - EPSILON

    @given(rates, gaps, st.floats(min_value=0.05, max_value=3))
    def test_no_window_holds_more_than_rate_times_width_plus_burst(
        self, rate: Rate, gaps: list[float], width: float
    ) -> None:
        """In any window of w seconds, at most burst + w × rate sends (whatever the arrivals)."""
        sends = [t.send_at for t in _schedule(rate, list(itertools.accumulate(gaps)))]
        for start in sends:
            inside = sum(start <= s < start + width for s in sends)
            assert inside <= rate.burst + width * rate.per_second + EPSILON

    @given(rates, gaps, st.floats(min_value=0, max_value=5))
    def test_a_refused_caller_costs_the_others_nothing(self, rate: Rate, gaps: list[float], max_wait: float) -> None:
        """Refused callers reserve nothing: the others get exactly the turns they would get without them."""
        granted = _granted(rate, list(itertools.accumulate(gaps)), max_wait)
        alone = _schedule(rate, [arrival for arrival, _ in granted])
        assert [turn for _, turn in granted] == alone
        assert all(turn.wait_s(arrival) <= max_wait for arrival, turn in granted)

    @given(rates, st.floats(min_value=0, max_value=1e9), st.floats(min_value=0, max_value=100))
    def test_the_send_time_follows_from_the_schedule_left_behind(self, rate: Rate, now: float, behind: float) -> None:
        """What the SQL returns (next_at after the turn) gives back the turn's send time."""
        turn = next_turn(now - behind if behind else None, now, rate)
        assert send_at_for(turn.next_at, now, rate) == pytest.approx(turn.send_at, abs=1e-6)

    def test_an_idle_schedule_earns_no_more_than_the_burst(self) -> None:
        """After a long quiet spell, burst callers go at once and the next waits one interval."""
        rate = Rate(per_second=2, burst=3)
        turns = _schedule(rate, [1000.0] * 4)
        assert [t.wait_s(1000.0) for t in turns] == [0.0, 0.0, 0.0, 0.5]

    @pytest.mark.parametrize(("per_second", "burst"), [
        (0, 1),  # no rate at all
        (-1, 1),  # a negative rate
        (1, 0),  # a burst of nothing
    ])  # fmt: skip
    def test_a_rate_that_means_nothing_is_refused(self, per_second: float, burst: int) -> None:
        """A rate needs a positive speed and a burst of at least one."""
        with pytest.raises(ValueError, match="rate"):
            Rate(per_second, burst)
