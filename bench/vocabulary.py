"""Words, names and a clock for realistic benchmark documents (shared by the Mongo benches).

Text drawn from a fixed vocabulary compresses like real text rather than like random bytes.
"""

from __future__ import annotations

import datetime
import random

SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "xe", "zu", "ar", "en"]


class Vocabulary:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.words = [
            "".join(self.rng.choices(SYLLABLES, k=self.rng.randint(1, 4))) for _ in range(3000)
        ]
        self.names = [w.capitalize() for w in self.words[:400]]
        self.cities = [w.capitalize() + "ville" for w in self.words[400:520]]
        self.tags = self.words[520:600]
        self.fields = self.words[600:700]
        self.epoch = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)

    def text(self, low: int, high: int) -> str:
        return " ".join(self.rng.choices(self.words, k=self.rng.randint(low, high)))
