"""The simulator: one class assembled from a mixin per concern, all sharing one seeded RNG.

core.py (state, RNG helpers), fleet.py (agents, IAM identities), writers.py (a writer per log
format), credentials.py (Vault logins, STS sessions), arguments.py (tool-call arguments),
tools.py (tool calls and the Vault / AWS calls they cause), tasks.py (a task end to end),
scenarios.py (SCENARIOS) and anomalies.py (ANOMALY_SCENARIOS).
"""

from __future__ import annotations

from chainwatch.harness.simulate.anomalies import _AnomalyTasks
from chainwatch.harness.simulate.arguments import _Arguments
from chainwatch.harness.simulate.credentials import _Credentials
from chainwatch.harness.simulate.fleet import _Fleet
from chainwatch.harness.simulate.scenarios import _Scenarios
from chainwatch.harness.simulate.tasks import _Tasks
from chainwatch.harness.simulate.tools import _Tools
from chainwatch.harness.simulate.writers import _Writers


class _Simulator(
    _Tasks, _Scenarios, _AnomalyTasks, _Tools, _Arguments, _Credentials, _Fleet, _Writers
):
    """The fleet, its RNG and counters; generates one task at a time into the sinks."""
