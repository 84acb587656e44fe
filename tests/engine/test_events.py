"""The progress meter: throttled to a rate, always ends on the final count."""

from __future__ import annotations

from engine.events import Progress, ProgressMeter


def test_meter_emits_at_most_ten_times_a_second_and_the_final_count() -> None:
    now = [0.0]
    seen: list[Progress] = []
    meter = ProgressMeter("db", seen.append, total=10_000, clock=lambda: now[0])
    for _ in range(1000):  # 1000 chunks over one second
        now[0] += 0.001
        meter.advance(10)
    meter.finish()
    assert 9 <= len(seen) <= 12
    assert seen[-1].done == 10_000
    assert seen[-1].total == 10_000
    assert 8_000 <= seen[-1].rate <= 12_000  # 10 kB/s
