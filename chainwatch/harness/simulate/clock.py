"""Time: integer microseconds since the epoch, the arrival rhythm, and formatting without
datetime objects on the hot path."""

from __future__ import annotations

from datetime import date, timedelta

_S = 1_000_000  # microseconds per second: all times are integer microseconds since the epoch
_MIN = 60 * _S
_HOUR = 3600 * _S
_DAY = 24 * _HOUR

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Relative task arrival rate per UTC hour of the day, and for Saturday/Sunday.
_HOUR_WEIGHTS = (0.04,) * 6 + (0.2, 0.5) + (1.0,) * 10 + (0.5, 0.3, 0.2) + (0.08,) * 3
_WEEKEND_WEIGHT = 0.35


class _Clock:
    def __init__(self) -> None:
        self._days: dict[int, tuple[str, date]] = {}

    def _day(self, d: int) -> tuple[str, date]:
        hit = self._days.get(d)
        if hit is None:
            day = date(1970, 1, 1) + timedelta(days=d)
            hit = self._days[d] = (day.isoformat(), day)
        return hit

    def day_str(self, t: int) -> str:
        return self._day(t // _DAY)[0]

    def iso(self, t: int, digits: int = 6) -> str:
        """RFC 3339 in UTC with 6 (Vault), 3 (native) or 0 (CloudTrail) fraction digits."""
        d, r = divmod(t, _DAY)
        sec, us = divmod(r, _S)
        h, rem = divmod(sec, 3600)
        m, s = divmod(rem, 60)
        base = f"{self._day(d)[0]}T{h:02d}:{m:02d}:{s:02d}"
        if digits == 6:
            return f"{base}.{us:06d}Z"
        if digits == 3:
            return f"{base}.{us // 1000:03d}Z"
        return base + "Z"

    def aws_human(self, t: int, comma: bool) -> str:
        """CloudTrail's non-ISO dates: 'Oct 2, 2019 11:12:29 PM' or 'Nov 30, 2024, 8:43:17 PM'."""
        d, r = divmod(t, _DAY)
        day = self._day(d)[1]
        sec = r // _S
        h, rem = divmod(sec, 3600)
        m, s = divmod(rem, 60)
        sep = ", " if comma else " "
        hour12 = h % 12 or 12
        ampm = "PM" if h >= 12 else "AM"
        return f"{_MONTHS[day.month - 1]} {day.day}, {day.year}{sep}{hour12}:{m:02d}:{s:02d} {ampm}"
