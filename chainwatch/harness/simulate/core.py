"""The simulator's shared state, counters and seeded RNG helpers, which every mixin builds on.

One RNG drives everything: the order of the draws is the output, so a refactor that moves a
draw changes the bytes (tests/chainwatch/harness/test_simulate.py pins them).
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import random
from datetime import UTC, date, datetime
from typing import Any, TextIO

from chainwatch.harness.simulate.catalog import _ROLES
from chainwatch.harness.simulate.clock import _MIN, _S, _Clock
from chainwatch.harness.simulate.sinks import _Sinks
from chainwatch.harness.simulate.state import _Agent, _Anomaly, _Followup

_B64_TO_ALNUM = bytes.maketrans(b"+/", b"Xq")


class _SimCore:
    """The fleet, its RNG and counters. The agents are made by the fleet mixin (fleet.py)."""

    def __init__(
        self, seed: int, n_agents: int, start: date, sinks: _Sinks, labels: TextIO | None
    ) -> None:
        self.rng = random.Random(seed)
        self._rand = self.rng.random
        self.clock = _Clock()
        self.sinks = sinks
        self.labels = labels
        self.t0 = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp()) * _S
        self._salt = hashlib.sha256(f"chainwatch-sim-audit-salt-{seed}".encode()).digest()
        self.account = str(self.rng.randrange(10**11, 10**12))
        self.tool_actions = self.vault_requests = self.vault_entries = 0
        self.cloudtrail_records = self.task_events = self.tasks = 0
        self.scenarios: dict[str, int] = {}
        self.run_end = 2**62  # set by simulate(); after-effects of scenarios stay before it
        self._task_seq = 0
        self._assumed = self._assume_denied = 0
        self._scheduled: list[tuple[int, int, _Followup | _Anomaly]] = []
        self._sched_seq = 0
        self._role_ids = {r.name: "AROA" + self._upper(17) for r in _ROLES}
        self._approle_ids = {r.name: self._hmac(self._uuid()) for r in _ROLES}
        self.agents = [self._make_agent(i) for i in range(1, n_agents + 1)]
        self._cum_weights: list[float] = []
        total = 0.0
        for a in self.agents:
            total += a.role.weight
            self._cum_weights.append(total)

    # ---- small RNG helpers -----------------------------------------------------------------

    def _ri(self, lo: int, hi: int) -> int:
        return lo + int(self._rand() * (hi - lo + 1))

    def _pick(self, seq: tuple | list) -> Any:
        return seq[int(self._rand() * len(seq))]

    def _hex(self, n: int) -> str:
        return f"{self.rng.getrandbits(4 * n):0{n}x}"

    def _chars(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choices(alphabet, k=n))

    def _b62(self, n: int) -> str:
        """n letters and digits (base64 with its two symbols mapped to letters: fast)."""
        raw = base64.b64encode(self.rng.randbytes((n * 3 + 3) // 4))
        return raw[:n].translate(_B64_TO_ALNUM).decode()

    def _upper(self, n: int) -> str:
        """n characters of A-Z and 2-7, the alphabet of AWS access key ids."""
        return base64.b32encode(self.rng.randbytes((n * 5 + 7) // 8))[:n].decode()

    def _uuid(self) -> str:
        h = self._hex(32)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    def _hmac(self, raw: str) -> str:
        return "hmac-sha256:" + hmac.new(self._salt, raw.encode(), hashlib.sha256).hexdigest()

    # ---- tasks scheduled for later (scenario follow-ups, anomaly tasks) ---------------------

    @property
    def _last_followup(self) -> int:
        return self.run_end - 45 * _MIN

    def _schedule(self, start: int, followup: _Followup | _Anomaly) -> None:
        self._sched_seq += 1
        heapq.heappush(self._scheduled, (start, self._sched_seq, followup))

    def _make_agent(self, i: int) -> _Agent:
        raise NotImplementedError  # the fleet mixin's (fleet.py)
