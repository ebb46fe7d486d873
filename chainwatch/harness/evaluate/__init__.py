"""Score the `findings` table against the simulator's ground truth (`labels.jsonl`).

Each line of `labels.jsonl` is one injected scenario instance (see `chainwatch/harness/simulate/`):
``{"scenario", "task_id", "agent_id", "credential_source_id", "credential_namespace", "note"}``.
A mapping from rule ids to the scenarios each rule is meant to catch (``DEFAULT_RULE_SCENARIOS``
unless overridden) decides which findings can detect which labels.

Definitions (all counts are exact; a ratio with a zero denominator is ``None``, "undefined"):

* A finding **matches** a label when the finding's rule maps to the label's scenario and the
  entities agree: for a credential scenario (``CREDENTIAL_SCENARIOS``) whose label names a
  credential, the finding's ``credential_id`` equals the label's credential hashed the way
  ingest hashes it (``credential_id()``); otherwise the finding's ``task_id`` equals the label's.
  A finding on the right task but a different (or no) credential does not match a credential
  label.
* **Recall** of a scenario = labels matched by at least one finding / labels of the scenario.
* A finding is a **true positive** when it matches some label of *any* scenario its own rule
  maps to, and a false positive otherwise. So a rule mapped to several scenarios (e.g.
  ``credential_used_after_task``) is not penalised for catching a sibling scenario.
* **Precision** of a scenario = true-positive findings / all findings, over the findings of the
  rules mapped to that scenario. A finding of a multi-scenario rule is counted in the row of
  every scenario its rule maps to.
* **Overall** (micro-averaged over rule-covered scenarios): recall = matched labels / labels,
  summed over covered scenarios; precision = true positives / findings over the *distinct*
  findings of all mapped rules, each finding counted once however many scenarios its rule maps
  to (so the overall finding count can be below the sum of the per-scenario counts).
* Every finding counts as a detection whatever its status: suppressed findings are kept and
  marked by chainwatch, so they still count (and are reported separately as ``suppressed``);
  a suppression hides a finding from triage, it does not undo the detection.
* Scenarios with labels but no mapped rule are reported as not covered by a rule and left out of
  the overall figures. Findings of rules absent from the mapping are listed as unmapped and not
  scored.

Modules: ``labels`` (reading labels.jsonl, hashing credentials with ingest's ``cw_hash``),
``rules`` (findings against labels), ``anomalies`` (anomaly scores against the rule-less
scenarios) and ``formatting`` (tables and JSON). The assistant simulator's content-injection
labels are scored by ``content`` (definitions there), read by ``content_labels`` and rendered by
``content_format``.
"""

from chainwatch.harness.evaluate.anomalies import (
    ANOMALY_FPR,
    ANOMALY_SIGNALS,
    AnomalyEvaluation,
    AnomalyScenarioResult,
    SignalResult,
    evaluate_anomalies,
    recall_at_fpr,
)
from chainwatch.harness.evaluate.content import (
    DEFAULT_CONTENT_RULES,
    ContentEvaluation,
    ContentSettings,
    OperatingPoint,
    QueueResult,
    RuleSetResult,
    evaluate_content,
)
from chainwatch.harness.evaluate.content_format import format_content_evaluation
from chainwatch.harness.evaluate.content_labels import (
    CONTENT_SCENARIO,
    ContentLabel,
    label_scenarios,
    load_content_labels,
)
from chainwatch.harness.evaluate.formatting import (
    FORMATS,
    NOT_COVERED,
    format_anomaly_evaluation,
    format_evaluation,
)
from chainwatch.harness.evaluate.labels import (
    CREDENTIAL_SCENARIOS,
    EvaluationError,
    Label,
    credential_id,
    credential_ids,
    load_labels,
)
from chainwatch.harness.evaluate.rules import (
    DEFAULT_RULE_SCENARIOS,
    PRECISION_DEFINITION,
    Evaluation,
    Overall,
    RuleResult,
    ScenarioResult,
    evaluate,
)

__all__ = [
    "ANOMALY_FPR",
    "ANOMALY_SIGNALS",
    "CONTENT_SCENARIO",
    "CREDENTIAL_SCENARIOS",
    "DEFAULT_CONTENT_RULES",
    "DEFAULT_RULE_SCENARIOS",
    "FORMATS",
    "NOT_COVERED",
    "PRECISION_DEFINITION",
    "AnomalyEvaluation",
    "AnomalyScenarioResult",
    "ContentEvaluation",
    "ContentLabel",
    "ContentSettings",
    "Evaluation",
    "EvaluationError",
    "Label",
    "OperatingPoint",
    "Overall",
    "QueueResult",
    "RuleResult",
    "RuleSetResult",
    "ScenarioResult",
    "SignalResult",
    "credential_id",
    "credential_ids",
    "evaluate",
    "evaluate_anomalies",
    "evaluate_content",
    "format_anomaly_evaluation",
    "format_content_evaluation",
    "format_evaluation",
    "label_scenarios",
    "load_content_labels",
    "load_labels",
    "recall_at_fpr",
]
