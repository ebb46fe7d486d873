-- A finding's triage status and note.
SELECT status, triage_note FROM findings WHERE finding_id = $finding_id
