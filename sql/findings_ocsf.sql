-- Every row of `findings` as one OCSF Detection Finding (class_uid 2004), as JSON text, in one
-- set-based query. Parameters: $ocsf_version (the OCSF schema version the events follow) and
-- $product_version (chainwatch's version). Absent values come out as JSON null; the caller drops
-- them (OCSF omits attributes it has no value for).
-- The evidence looks every evidence event id up in agent_actions (the actions) and in
-- credential_events; an id found in neither is still listed in event_ids. Raw action arguments
-- (`args`) are never exported. A content-provenance finding's chain (source tool result ->
-- action) is in evidences[0].data.provenance_chain.

WITH evidence AS (
    SELECT finding_id,
        unnest(evidence_event_ids) AS event_id,
        generate_subscripts(evidence_event_ids, 1) AS pos
    FROM findings
),
action AS (
    SELECT event_id, ts, tool, system, action_class, destination
    FROM agent_actions
    WHERE event_id IN (SELECT event_id FROM evidence)
    QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ts, source_file, source_offset) = 1
),
credential_event AS (
    SELECT event_id, ts, event_type, credential_kind
    FROM credential_events
    WHERE event_id IN (SELECT event_id FROM evidence)
    QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ts, source_file, source_offset) = 1
),
evidence_detail AS (
    SELECT e.finding_id,
        list({'event_id': e.event_id, 'ts': epoch_ms(a.ts), 'tool': a.tool, 'system': a.system,
              'action_class': a.action_class, 'destination': a.destination} ORDER BY e.pos)
            FILTER (WHERE a.event_id IS NOT NULL) AS actions,
        list({'event_id': e.event_id, 'ts': epoch_ms(c.ts), 'event_type': c.event_type,
              'credential_kind': c.credential_kind} ORDER BY e.pos)
            FILTER (WHERE c.event_id IS NOT NULL) AS credential_events
    FROM evidence e
    LEFT JOIN action a ON a.event_id = e.event_id
    LEFT JOIN credential_event c ON c.event_id = e.event_id
    GROUP BY e.finding_id
),
mapped AS (
    SELECT f.*,
        CASE WHEN f.status = 'resolved' THEN 3
             WHEN f.first_detected_at = f.last_detected_at THEN 1
             ELSE 2 END AS activity_id,
        CASE f.severity WHEN 'informational' THEN 1 WHEN 'low' THEN 2 WHEN 'medium' THEN 3
             WHEN 'high' THEN 4 WHEN 'critical' THEN 5 ELSE 99 END AS severity_id,
        CASE f.status WHEN 'new' THEN 1 WHEN 'in_progress' THEN 2 WHEN 'suppressed' THEN 3
             WHEN 'resolved' THEN 4 ELSE 99 END AS status_id,
        CASE f.confidence WHEN 'low' THEN 1 WHEN 'medium' THEN 2 WHEN 'high' THEN 3
             ELSE 99 END AS confidence_id,
        CASE f.analytic_type WHEN 'rule' THEN 1 WHEN 'behavioral' THEN 2 WHEN 'statistical' THEN 3
             WHEN 'learning' THEN 4 ELSE 99 END AS analytic_type_id,
        list_concat(coalesce(json_extract_string(f.frameworks, '$.owasp_agentic[*]'), []),
                    coalesce(json_extract_string(f.frameworks, '$.owasp_nhi[*]'), []))
            AS owasp_types,
        coalesce(d.actions, []) AS actions,
        coalesce(d.credential_events, []) AS credential_events,
        from_json(f.explanation, '{"peer_group": "VARCHAR",
            "top_features": [{"feature": "VARCHAR", "value": "DOUBLE", "peer_median": "DOUBLE", "robust_z": "DOUBLE", "peer_share": "DOUBLE"}],
            "rare_transitions": [{"event_id": "VARCHAR", "from_tool": "VARCHAR", "to_tool": "VARCHAR", "probability": "DOUBLE"}]}')
            AS ex,
        coalesce(json_exists(f.explanation, '$.top_features') OR json_exists(f.explanation, '$.rare_transitions'), false)
            AS has_anomaly_explanation,
        -- Content-provenance findings: the tool result that introduced each value and the action
        -- that used it.
        from_json(f.explanation -> 'chain', '[{"source_event_id": "VARCHAR", "source_tool": "VARCHAR",
            "action_event_id": "VARCHAR", "tool": "VARCHAR", "arguments": "VARCHAR",
            "instruction_like": "BOOLEAN", "risk": "INTEGER"}]') AS provenance_chain
    FROM findings f
    LEFT JOIN evidence_detail d ON d.finding_id = f.finding_id
)
SELECT finding_id, to_json({
    'class_uid': 2004,
    'class_name': 'Detection Finding',
    'category_uid': 2,
    'category_name': 'Findings',
    'activity_id': activity_id,
    'activity_name': CASE activity_id WHEN 1 THEN 'Create' WHEN 2 THEN 'Update' ELSE 'Close' END,
    'type_uid': 2004 * 100 + activity_id,
    'type_name': 'Detection Finding: '
        || CASE activity_id WHEN 1 THEN 'Create' WHEN 2 THEN 'Update' ELSE 'Close' END,
    'severity_id': severity_id,
    'severity': CASE severity_id WHEN 99 THEN severity ELSE upper(severity[1]) || severity[2:] END,
    'time': epoch_ms(last_detected_at),
    'start_time': epoch_ms(first_seen),
    'end_time': epoch_ms(last_seen),
    'message': title || ' (' || entity_type || ' ' || entity_id || ')',
    'status_id': status_id,
    'status': CASE status_id WHEN 1 THEN 'New' WHEN 2 THEN 'In Progress' WHEN 3 THEN 'Suppressed'
                  WHEN 4 THEN 'Resolved' ELSE status END,
    'status_detail': suppression,
    'comment': triage_note,
    'confidence_id': confidence_id,
    'confidence': CASE confidence_id WHEN 99 THEN confidence
                      ELSE upper(confidence[1]) || confidence[2:] END,
    'risk_score': risk_score,
    'metadata': {
        'version': $ocsf_version,
        'product': {'name': 'chainwatch', 'vendor_name': 'chainwatch', 'version': $product_version}
    },
    'finding_info': {
        'uid': finding_id,
        'title': title,
        'desc': detail,
        'types': CASE WHEN len(owasp_types) > 0 THEN owasp_types END,
        'analytic': {
            'type_id': analytic_type_id,
            'type': CASE analytic_type_id WHEN 1 THEN 'Rule' WHEN 2 THEN 'Behavioral'
                        WHEN 3 THEN 'Statistical' WHEN 4 THEN 'Learning (ML/DL)'
                        ELSE analytic_type END,
            'name': rule_id,
            'uid': rule_id
        },
        'first_seen_time': epoch_ms(first_seen),
        'last_seen_time': epoch_ms(last_seen),
        'created_time': epoch_ms(first_detected_at),
        'modified_time': epoch_ms(last_detected_at)
    },
    'evidences': [{
        'name': 'chainwatch evidence',
        'actor': {
            'app_name': agent_id,
            'app_uid': agent_id,
            'session': {'credential_uid': credential_id}
        },
        'data': {
            'agent_id': agent_id,
            'task_id': task_id,
            'credential_id': credential_id,
            'event_ids': evidence_event_ids,
            'actions': actions,
            'credential_events': credential_events,
            'provenance_chain': provenance_chain
        }
    }],
    -- Anomaly findings: the features furthest from the peer median and the rare transitions, with
    -- the peer medians as baselines.
    'anomaly_analyses': CASE WHEN has_anomaly_explanation THEN [{
        'analysis_targets': [{'name': coalesce(task_id, entity_id), 'type': 'Agent Task'}],
        'anomalies': list_concat(
            [{'observation_parameter': x.feature,
              'observation_type': 'Task feature (robust z-score against the peer median)',
              'observations': [{'value': CAST(round(x.value, 3) AS VARCHAR)}],
              'observed_pattern': printf('%.2f%% of peers at or above; robust z %.2f',
                                         100 * coalesce(x.peer_share, 1), x.robust_z)}
             FOR x IN coalesce(ex.top_features, [])],
            [{'observation_parameter': 'tool transition',
              'observation_type': 'Transition not among the top successors in the peer group',
              'observations': [{'value': x.from_tool || ' -> ' || x.to_tool}],
              'observed_pattern': printf('probability %.4f', x.probability)}
             FOR x IN coalesce(ex.rare_transitions, [])]),
        'baselines': [{'observation_parameter': x.feature,
                       'observation_type': 'Peer group median',
                       'observations': [{'value': CAST(round(x.peer_median, 3) AS VARCHAR)}],
                       'observed_pattern': 'peer group ' || coalesce(ex.peer_group, '?')}
                      FOR x IN coalesce(ex.top_features, [])]
    }] END,
    'resources': list_filter([
        {'uid': agent_id, 'name': agent_id, 'type': 'AI Agent',
         'role_id': CASE WHEN entity_type = 'agent' THEN 1 ELSE 2 END,
         'role': CASE WHEN entity_type = 'agent' THEN 'Target' ELSE 'Actor' END},
        {'uid': task_id, 'name': task_id, 'type': 'Agent Task',
         'role_id': CASE WHEN entity_type = 'task' THEN 1 ELSE 4 END,
         'role': CASE WHEN entity_type = 'task' THEN 'Target' ELSE 'Related' END},
        {'uid': credential_id, 'name': credential_id, 'type': 'Credential',
         'role_id': CASE WHEN entity_type = 'credential' THEN 1 ELSE 4 END,
         'role': CASE WHEN entity_type = 'credential' THEN 'Target' ELSE 'Related' END}
    ], lambda r: r.uid IS NOT NULL),
    'unmapped': {
        'chainwatch': {
            'entity_type': entity_type,
            'entity_id': entity_id,
            'frameworks': frameworks,
            'triage_status': triage_status,
            'priority': priority,
            'anomaly_percentile': anomaly_percentile,
            'explanation': explanation
        }
    }
}) AS event
FROM mapped
ORDER BY first_seen, finding_id;
