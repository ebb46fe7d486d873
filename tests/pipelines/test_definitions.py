"""The Dagster wiring loads, materialises on a temporary DuckDB, and its sensor and schedule behave."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
from dagster import AssetKey, DagsterInstance, build_sensor_context, materialize

from detectors.core.settings import load_settings
from pipelines import resources as resources_module
from pipelines.anomaly.assets import anomaly_findings, task_anomaly_scores
from pipelines.canonical.assets import CANONICAL_ASSETS
from pipelines.definitions import build_definitions, defs
from pipelines.detect.assets import DETECT_ASSETS, PUBLISH_ASSETS
from pipelines.ingest.assets import RAW_ASSETS
from pipelines.jobs import INGEST_JOB_NAME, REFIT_JOB_NAME, SCORE_JOB_NAME
from pipelines.resources import default_resources
from pipelines.sensors import landing_folder_sensor
from tests.conftest import write_json, write_lines

DAY = "2026-11-01"


def _landing(root: Path) -> Path:
    day = root / DAY
    write_lines(
        day / "native.jsonl",
        [
            {
                "record_type": "task",
                "event_id": "s",
                "ts": f"{DAY}T09:00:00Z",
                "event": "start",
                "task_id": "task-1",
                "agent_id": "agent-1",
            },
            {
                "record_type": "task",
                "event_id": "e",
                "ts": f"{DAY}T09:30:00Z",
                "event": "end",
                "task_id": "task-1",
                "status": "completed",
            },
            "{not json",
        ],
    )
    write_json(
        day / "cloudtrail.json",
        {
            "Records": [
                {
                    "eventTime": f"{DAY}T09:01:00Z",
                    "eventSource": "sts.amazonaws.com",
                    "eventName": "AssumeRole",
                    "eventID": "c1",
                    "userIdentity": {"type": "IAMUser", "userName": "orchestrator"},
                    "requestParameters": {
                        "roleArn": "arn:aws:iam::1:role/Agent",
                        "roleSessionName": "agent-1@task-1",
                    },
                    "responseElements": {
                        "credentials": {
                            "accessKeyId": "ASIAAAAAAAAAAAAAAAA1",
                            "expiration": "Nov 1, 2026, 9:01:00 PM",
                        }
                    },
                },
                {
                    "eventTime": f"{DAY}T09:05:00Z",
                    "eventSource": "s3.amazonaws.com",
                    "eventName": "GetObject",
                    "eventID": "c2",
                    "userIdentity": {"type": "AssumedRole", "accessKeyId": "ASIAAAAAAAAAAAAAAAA1"},
                    "requestParameters": {"bucketName": "reports", "key": "q3.csv"},
                },
            ]
        },
    )
    write_lines(
        day / "vault.log",
        [
            {
                "time": f"{DAY}T09:02:00Z",
                "type": "response",
                "auth": {"client_token": "hmac-sha256:t1", "metadata": {"task_id": "task-1"}},
                "request": {"id": "v1", "operation": "read", "path": "secret/data/crm"},
                "response": {},
            },
        ],
    )
    return root


def test_definitions_load_with_every_asset_check_job_schedule_and_sensor():
    names = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {
        "raw_otlp_traces",
        "raw_vault_audit",
        "raw_cloudtrail",
        "raw_k8s_audit",
        "raw_native_events",
        "agent_actions",
        "credential_events",
        "tasks",
        "rejected_events",
    } <= names
    assert defs.resolve_job_def(INGEST_JOB_NAME).name == INGEST_JOB_NAME
    schedule = defs.resolve_schedule_def("chainwatch_ingest_schedule")
    assert schedule.cron_schedule == "30 1 * * *"
    assert defs.resolve_sensor_def("landing_folder_sensor").job_name == INGEST_JOB_NAME
    check_keys = {
        (k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys
    }
    assert ("raw_cloudtrail", "conservation") in check_keys
    assert ("agent_actions", "no_future_timestamps") in check_keys
    assert ("agent_actions", "ingestion_lag") in check_keys
    assert ("tasks", "schema_matches") in check_keys
    assert ("task_anomaly_scores", "scores_in_range") in check_keys


def test_refit_is_its_own_scheduled_job_and_the_daily_job_never_refits():
    def assets_of(job_name: str) -> set[str]:
        job = defs.resolve_job_def(job_name)
        return {k.to_user_string() for k in job.asset_layer.selected_asset_keys}

    daily = assets_of(INGEST_JOB_NAME)
    assert {"task_anomaly_scores", "anomaly_findings", "findings"} <= daily
    assert "anomaly_models" not in daily
    assert assets_of(REFIT_JOB_NAME) == {"anomaly_models"}
    assert "anomaly_models" not in assets_of(SCORE_JOB_NAME)
    refit = defs.resolve_schedule_def("weekly_model_refit")
    assert refit.job_name == REFIT_JOB_NAME and refit.cron_schedule == "30 0 * * 0"


def test_materialize_one_partition_on_a_temporary_duckdb(tmp_path: Path, monkeypatch):
    landing = _landing(tmp_path / "landing")
    db = tmp_path / "wh.duckdb"
    built = []  # settings are resolved once per run, then passed down to every asset
    monkeypatch.setattr(
        resources_module,
        "load_settings",
        lambda *a, **kw: built.append(1) or load_settings(*a, **kw),
    )
    result = materialize(
        [
            *RAW_ASSETS,
            *CANONICAL_ASSETS,
            *DETECT_ASSETS,
            task_anomaly_scores,
            anomaly_findings,
            *PUBLISH_ASSETS,
        ],
        partition_key=DAY,
        resources=default_resources(db_path=str(db), landing_dir=str(landing)),
        instance=DagsterInstance.ephemeral(),
    )
    assert result.success
    assert len(built) == 1
    evaluations = {
        (e.asset_key.to_user_string(), e.check_name): e.passed
        for e in result.get_asset_check_evaluations()
    }
    assert evaluations[("raw_cloudtrail", "conservation")] is True
    assert evaluations[("raw_native_events", "conservation")] is True
    assert evaluations[("raw_native_events", "landing_files_recognised")] is True
    assert evaluations[("agent_actions", "schema_matches")] is True
    assert evaluations[("agent_actions", "no_future_timestamps")] is True
    assert evaluations[("credential_rules", "findings_well_formed")] is True
    assert evaluations[("findings", "exports_match_table")] is True
    # No model yet: nothing is scored, the check still holds, nothing anomalous is flagged.
    assert evaluations[("task_anomaly_scores", "scores_in_range")] is True
    assert (
        result.asset_materializations_for_node("task_anomaly_scores")[0].metadata["scored"].value
        == 0
    )
    # The STS session of task-1 stays valid 11.5 h after the task ended: it outlived its task.
    findings_meta = result.asset_materializations_for_node("findings")[0].metadata
    assert findings_meta["findings"].value >= 1
    assert (tmp_path / "findings" / "findings.ocsf.jsonl").exists()
    meta = result.asset_materializations_for_node("raw_native_events")[0].metadata
    assert meta["records"].value == 3 and meta["rejected"].value == 1
    con = duckdb.connect(str(db), read_only=True)
    task = con.execute(
        "SELECT agent_id, status, end_source, actions, credentials_issued FROM tasks WHERE task_id = 'task-1'"
    ).fetchone()
    # The AssumeRole that minted its session, the S3 call made with it, the Vault read.
    assert task == ("agent-1", "completed", "task_event", 3, 1)
    # The S3 call names no task: the agent_actions asset linked it through its STS credential.
    assert con.execute(
        "SELECT task_id, task_source FROM agent_actions WHERE event_id = 'ct:c2'"
    ).fetchone() == ("task-1", "credential")


def test_rematerializing_a_partition_adds_no_rows(tmp_path: Path):
    landing = _landing(tmp_path / "landing")
    db = tmp_path / "wh.duckdb"
    resources = default_resources(db_path=str(db), landing_dir=str(landing))
    assets = [*RAW_ASSETS, *CANONICAL_ASSETS]
    materialize(
        assets, partition_key=DAY, resources=resources, instance=DagsterInstance.ephemeral()
    )
    con = duckdb.connect(str(db), read_only=True)
    first = con.execute(
        "SELECT (SELECT count(*) FROM agent_actions), (SELECT count(*) FROM tasks), (SELECT count(*) FROM rejected_events)"
    ).fetchone()
    con.close()
    materialize(
        assets, partition_key=DAY, resources=resources, instance=DagsterInstance.ephemeral()
    )
    con = duckdb.connect(str(db), read_only=True)
    second = con.execute(
        "SELECT (SELECT count(*) FROM agent_actions), (SELECT count(*) FROM tasks), (SELECT count(*) FROM rejected_events)"
    ).fetchone()
    assert first == second == (3, 1, 1)


def test_an_unrecognised_landing_file_fails_its_check_but_not_the_run(tmp_path: Path):
    landing = _landing(tmp_path / "landing")
    (landing / DAY / "mystery.log").write_text("just some text\n")
    result = materialize(
        [*RAW_ASSETS, *CANONICAL_ASSETS],
        partition_key=DAY,
        resources=default_resources(db_path=str(tmp_path / "wh.duckdb"), landing_dir=str(landing)),
        instance=DagsterInstance.ephemeral(),
    )
    assert result.success
    evaluation = next(
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "landing_files_recognised"
    )
    assert evaluation.passed is False
    assert "mystery.log" in str(evaluation.metadata["files"].value)


def test_sensor_requests_runs_for_new_and_changed_files_only(tmp_path: Path):
    landing = _landing(tmp_path / "landing")
    write_lines(
        landing / "2026-11-02" / "native.jsonl",
        [{"record_type": "task", "ts": "2026-11-02T09:00:00Z", "event": "start", "task_id": "t2"}],
    )
    resources = default_resources(db_path=str(tmp_path / "wh.duckdb"), landing_dir=str(landing))
    instance = DagsterInstance.ephemeral()
    context = build_sensor_context(
        instance=instance, resources={"chainwatch": resources["chainwatch"]}
    )
    first = landing_folder_sensor(context)
    assert sorted(r.partition_key for r in first) == ["2026-11-01", "2026-11-02"]
    context = build_sensor_context(
        instance=instance, cursor=context.cursor, resources={"chainwatch": resources["chainwatch"]}
    )
    second = landing_folder_sensor(context)
    assert "no new or changed files" in second.skip_message
    changed = landing / "2026-11-02" / "native.jsonl"
    changed.write_text(
        changed.read_text()
        + '{"record_type":"task","ts":"2026-11-02T10:00:00Z","event":"end","task_id":"t2"}\n'
    )
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    context = build_sensor_context(
        instance=instance, cursor=context.cursor, resources={"chainwatch": resources["chainwatch"]}
    )
    third = landing_folder_sensor(context)
    assert [r.partition_key for r in third] == ["2026-11-02"]


def test_sensor_ignores_links_that_escape_the_landing_folder(tmp_path: Path):
    outside = write_lines(
        tmp_path / "outside" / "2026-11-03.jsonl",
        [{"record_type": "task", "ts": "2026-11-03T00:00:00Z", "event": "start", "task_id": "x"}],
    )
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "escape.jsonl").symlink_to(outside)
    resources = default_resources(db_path=str(tmp_path / "wh.duckdb"), landing_dir=str(landing))
    context = build_sensor_context(
        instance=DagsterInstance.ephemeral(), resources={"chainwatch": resources["chainwatch"]}
    )
    result = landing_folder_sensor(context)
    assert "no new or changed files" in result.skip_message


def test_build_definitions_points_resources_at_the_given_paths(tmp_path: Path):
    built = build_definitions(
        db_path=str(tmp_path / "x.duckdb"), landing_dir=str(tmp_path / "land")
    )
    assert built.resources["duckdb"].database == str(tmp_path / "x.duckdb")
    assert built.resources["chainwatch"].landing_dir == str(tmp_path / "land")
    assert AssetKey("tasks") in built.resolve_asset_graph().get_all_asset_keys()


def test_steps_share_one_process_because_duckdb_has_one_writer():
    assert defs.resolve_job_def(INGEST_JOB_NAME).executor_def.name == "in_process"
