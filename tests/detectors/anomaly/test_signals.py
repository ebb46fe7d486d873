"""Signals: upper-tail shares, the tail score and the fusion of the signals."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.anomaly.signals import SIGNALS, fuse, tail_score, upper_tail_share


def test_fused_score_adds_the_surprise_of_each_signal():
    # shares: the fraction of training tasks at or above the task's value, per signal
    shares = {
        "iforest": np.array([1.0, 0.01, 0.01, 0.01, 0.5]),
        "tail": np.array([1.0, 1.0, 0.01, 1.0, 0.5]),
        "sequence": np.array([1.0, 1.0, 1.0, 0.01, 0.5]),
    }
    fused = fuse(shares)
    assert fused[0] == 0.0  # typical everywhere
    assert fused[1] == pytest.approx(np.log(100))  # one signal alone keeps its surprise
    assert fused[2] == pytest.approx(2 * np.log(100)) == fused[3]  # two signals add up
    assert fused[4] == pytest.approx(3 * np.log(2))  # middling everywhere: low
    assert fused[4] < fused[1]
    assert SIGNALS == ("iforest", "tail", "sequence")


def test_upper_tail_share_and_tail_score():
    train = np.sort(np.array([[0.0, 1.0], [0.0, 2.0], [0.0, 3.0], [1.0, 4.0]]), axis=0)
    shares = upper_tail_share(train, np.array([[0.0, 4.0], [1.0, 9.0], [np.nan, 0.0]]))
    # (training values at or above + 1) / (n + 1)
    assert shares.tolist() == [[1.0, 0.4], [0.4, 0.2], [1.0, 1.0]]
    assert tail_score(np.array([[1.0, 0.4], [0.01, 0.001]])).tolist() == pytest.approx(
        [0.0, np.log(5) + np.log(50)]
    )


def test_upper_tail_share_is_not_moved_by_summation_order():
    """A value equal to a training value but for its last bits (summed in another order, as the
    Spark engine does) counts that training value; a value clearly above does not."""
    train = np.sort(np.array([1.0, 2.3168232163628555, 5.0]))
    last_bits = np.nextafter(2.3168232163628555, 10.0)
    shares = upper_tail_share(train, np.array([2.3168232163628555, last_bits, 2.3168233]))
    assert shares.tolist() == [0.75, 0.75, 0.5]
