-- Merge this run's hits (temp rule_hits, rule_meta, suppressions) into `findings`. A hit may
-- override its detector's severity, risk score and analytic type (anomaly findings do) and carry
-- an explanation.
-- finding_id = rule + entity + window (the UTC day of first_seen): reruns update, never duplicate.
-- triage_status / triage_note belong to people and are never written here.

CREATE OR REPLACE TEMP TABLE run_findings AS
SELECT 'f_' || left(sha256(h.rule_id || '|' || h.entity_id || '|' || CAST(CAST(h.first_seen AS DATE) AS VARCHAR)), 24)
           AS finding_id,
    h.rule_id, m.title, coalesce(h.severity, m.severity) AS severity,
    coalesce(h.risk_score, m.risk_score) AS risk_score, m.confidence,
    coalesce(h.analytic_type, m.analytic_type) AS analytic_type, m.entity_type,
    h.entity_id, h.agent_id, h.task_id, h.credential_id, h.first_seen, h.last_seen,
    coalesce(h.evidence_event_ids, []) AS evidence_event_ids, h.detail, m.frameworks,
    h.explanation
FROM rule_hits h JOIN rule_meta m USING (rule_id)
WHERE h.entity_id IS NOT NULL AND h.first_seen IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY finding_id ORDER BY h.last_seen DESC, h.detail) = 1;

UPDATE findings SET
    title = r.title, severity = r.severity, risk_score = r.risk_score, confidence = r.confidence,
    analytic_type = r.analytic_type, entity_type = r.entity_type, agent_id = r.agent_id,
    task_id = r.task_id, credential_id = r.credential_id, first_seen = r.first_seen,
    last_seen = r.last_seen, evidence_event_ids = r.evidence_event_ids, detail = r.detail,
    frameworks = r.frameworks, explanation = r.explanation, last_detected_at = $now
FROM run_findings r
WHERE findings.finding_id = r.finding_id;

INSERT INTO findings BY NAME
SELECT r.*, r.risk_score AS priority, 'new' AS status, NULL AS triage_status, NULL AS triage_note, NULL AS suppression,
    $now AS first_detected_at, $now AS last_detected_at
FROM run_findings r
WHERE r.finding_id NOT IN (SELECT finding_id FROM findings);

-- Suppressions are recomputed for every finding: an expired entry stops applying.
UPDATE findings SET suppression = (
    SELECT s.reason FROM suppressions s
    WHERE findings.rule_id GLOB s.rule_glob
      AND (findings.entity_id GLOB s.entity_glob OR coalesce(findings.agent_id, '') GLOB s.entity_glob
           OR coalesce(findings.task_id, '') GLOB s.entity_glob OR coalesce(findings.credential_id, '') GLOB s.entity_glob)
    ORDER BY s.reason LIMIT 1);

UPDATE findings SET status = CASE
    WHEN triage_status IS NOT NULL THEN triage_status
    WHEN suppression IS NOT NULL THEN 'suppressed'
    ELSE 'new' END;
