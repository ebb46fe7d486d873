-- Session macros for parsing: redaction, keyed hashing, timestamps, OTLP AnyValue access.
-- Created as TEMP macros on the ingest connection; nothing here is stored in the warehouse.

CREATE OR REPLACE TEMP TABLE cw_key AS SELECT $ipad::BLOB AS ipad, $opad::BLOB AS opad;

-- HMAC-SHA256(key, namespace || ':' || value), shortened to 128 bits.
CREATE OR REPLACE TEMP MACRO cw_keyed(ns, v) AS
    CASE WHEN v IS NULL OR v::VARCHAR = '' THEN NULL ELSE
        left(sha256((SELECT opad FROM cw_key)
            || unhex(sha256((SELECT ipad FROM cw_key) || encode(ns || ':' || v::VARCHAR)))), 32)
    END;

-- The credential ids we store: never the secret or its identifier, only a keyed hash of it.
CREATE OR REPLACE TEMP MACRO cw_hash(ns, v) AS 'cred_' || cw_keyed(ns, v);

-- Secrets that must never be stored: private keys, bearer tokens, AWS key ids, GitHub, Slack,
-- Vault tokens, JWTs, and the values of secret-named keys (JSON, escaped JSON and key=value).
-- Keys that name a secret rather than hold one (AWS Secrets Manager's secretId / SecretArn /
-- SecretName and secret_arn / secret_name: ARNs and names) are kept: a marker (U+E000) is put
-- inside such a key so that the secret-named-key patterns skip it, and taken out at the end.
-- secret_id stays redacted: Vault AppRole's secret_id IS the secret.
CREATE OR REPLACE TEMP MACRO cw_redact(s) AS replace(
    regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
    regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
        regexp_replace(regexp_replace(s,
            '((?:\\?"|\b)[sS]ecret)((?:Id|ID|Arn|ARN|Name)s?(?:\\?"\s*:|=))', '\1' || chr(57344) || '\2', 'g'),
            '((?:\\?"|\b)secret_)((?:arn|name)s?(?:\\?"\s*:|=))', '\1' || chr(57344) || '\2', 'g'),
        -- Vault audit HMACs of tokens, accessors and request data: linkable identifiers.
        'hmac-sha256:[0-9A-Za-z+/=]{16,}', '[REDACTED:hmac]', 'g'),
        -- An AWS key id followed closely by its 40-character secret (a pasted key pair).
        '(A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}([^A-Za-z0-9/+]{1,40})[A-Za-z0-9/+]{40}([^A-Za-z0-9/+=]|$)',
        '[REDACTED:aws_key_id]\2[REDACTED:aws_secret]\3', 'g'),
        '-----BEGIN[A-Z ]*PRIVATE KEY-----(?s:.*?)(-----END[A-Z ]*PRIVATE KEY-----|$)', '[REDACTED:private_key]', 'g'),
        '(?i)bearer\s+[A-Za-z0-9\-._~+/]+=*', 'Bearer [REDACTED:bearer]', 'g'),
        '(A3T[A-Z0-9]|AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}', '[REDACTED:aws_key_id]', 'g'),
        '(gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{22,255})', '[REDACTED:github_token]', 'g'),
        'xox[abposre]-[A-Za-z0-9-]{10,}', '[REDACTED:slack_token]', 'g'),
        'https://hooks\.slack\.com/services/[A-Za-z0-9/_-]+', '[REDACTED:slack_webhook]', 'g'),
        '\b(hv[sbr]\.[A-Za-z0-9_-]{20,}|[sbr]\.[A-Za-z0-9]{24})\b', '[REDACTED:vault_token]', 'g'),
        'eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}', '[REDACTED:jwt]', 'g'),
        '(?i)(\\?"[a-z_-]*(secret|password|passwd|pwd|token|api_?key|apikey|private_?key|authorization|credential)[a-z_-]*\\?"\s*:\s*\\?")([^"\\]|\\[^"])*', '\1[REDACTED]', 'g'),
        '(?i)(\b[a-z_-]*(secret|password|passwd|pwd|token|api_?key|apikey|authorization|sig|signature)[a-z_-]*=)[^&\s"'',;]+', '\1[REDACTED]', 'g'),
    chr(57344), '');

-- Timestamps: ISO 8601 with or without offset (naive means UTC), or CloudTrail's non-ISO forms.
CREATE OR REPLACE TEMP MACRO cw_ts(s) AS coalesce(
    try_cast(try_cast(s AS TIMESTAMPTZ) AS TIMESTAMP),
    try_strptime(s, ['%b %d, %Y %I:%M:%S %p', '%b %d, %Y, %I:%M:%S %p']));

-- A timestamp from epoch microseconds, NULL when DuckDB cannot represent it: make_timestamp does
-- not check, and an unrepresentable value fails later, when it is printed or subtracted.
CREATE OR REPLACE TEMP MACRO cw_epoch_us(us) AS CASE
    WHEN us BETWEEN -9223372022400000000 AND 9223372036854775806 THEN try(make_timestamp(us::BIGINT))
    END;

-- A timestamp plus a lifetime in seconds; NULL when the lifetime or the sum is beyond what a
-- timestamp can hold (a nonsense TTL must not stop the batch).
CREATE OR REPLACE TEMP MACRO cw_plus_seconds(ts, s) AS try(ts + to_seconds(s));

-- A timestamp from a JSON value: an ISO string, or epoch seconds / milliseconds as a number.
CREATE OR REPLACE TEMP MACRO cw_ts_json(v) AS CASE
    WHEN json_type(v) = 'VARCHAR' THEN cw_ts(v ->> '$')
    WHEN json_type(v) IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN
        CASE WHEN abs(try_cast(v AS DOUBLE)) >= 1e11 THEN cw_epoch_us(try_cast(v AS DOUBLE) * 1000)
             ELSE cw_epoch_us(try_cast(v AS DOUBLE) * 1000000) END
    END;

-- Why a timestamp field is unusable, or NULL when it is fine.
CREATE OR REPLACE TEMP MACRO cw_ts_problem(field, raw, parsed) AS CASE
    WHEN raw IS NULL THEN 'missing required field ' || field
    WHEN parsed IS NULL THEN 'unparseable timestamp in ' || field || ': ' || left(raw::VARCHAR, 60)
    WHEN parsed < TIMESTAMP '1990-01-01' OR parsed > TIMESTAMP '2200-01-01'
        THEN 'timestamp out of range in ' || field || ': ' || parsed::VARCHAR
    END;

-- Why a field is not a JSON string (NULL when it is, or when absent and optional).
CREATE OR REPLACE TEMP MACRO cw_string_problem(field, v, required) AS CASE
    WHEN v IS NULL OR json_type(v) = 'NULL' THEN
        CASE WHEN required THEN 'missing required field ' || field END
    WHEN json_type(v) <> 'VARCHAR' THEN
        'wrong type for ' || field || ': expected string, got ' || cw_json_kind(v)
    WHEN required AND (v ->> '$') = '' THEN 'empty required field ' || field
    END;

-- A JSON scalar as text; objects and arrays as their JSON text.
CREATE OR REPLACE TEMP MACRO cw_text(v) AS CASE
    WHEN v IS NULL OR json_type(v) = 'NULL' THEN NULL
    WHEN json_type(v) IN ('OBJECT', 'ARRAY') THEN v::VARCHAR
    ELSE (v ->> '$') END;

-- JSON array of strings (or a single string) as a VARCHAR list.
CREATE OR REPLACE TEMP MACRO cw_str_list(v) AS CASE
    WHEN v IS NULL OR json_type(v) = 'NULL' THEN NULL
    WHEN json_type(v) = 'ARRAY' THEN list_transform(json_transform(v, '["JSON"]'), x -> cw_text(x))
    WHEN json_type(v) = 'VARCHAR' AND json_valid(v ->> '$') AND json_type((v ->> '$')::JSON) = 'ARRAY'
        THEN list_transform(json_transform((v ->> '$')::JSON, '["JSON"]'), x -> cw_text(x))
    WHEN json_type(v) = 'VARCHAR' THEN list_filter(string_split((v ->> '$'), ';'), x -> x <> '')
    END;

-- A byte count from text: a whole number >= 0 (a zero fraction, as in `1024.0`, is accepted),
-- else NULL. Signs, fractions, exponents and words are not counts.
CREATE OR REPLACE TEMP MACRO cw_byte_count(s) AS CASE
    WHEN regexp_full_match(trim(s::VARCHAR), '[0-9]+(\.0*)?')
        THEN try_cast(regexp_extract(trim(s::VARCHAR), '^[0-9]+') AS BIGINT)
    END;

-- First value of a JSON object among candidate keys (list of names).
CREATE OR REPLACE TEMP MACRO cw_first_key(obj, keys) AS
    list_filter(list_transform(keys, k -> json_extract_string(obj, '$."' || k || '"')), x -> x IS NOT NULL)[1];

-- OTLP AnyValue: one of stringValue, boolValue, intValue (string or number), doubleValue,
-- bytesValue, arrayValue{values}, kvlistValue{values:[{key,value}]}.
CREATE OR REPLACE TEMP MACRO cw_any_scalar_json(v) AS CASE
    WHEN v IS NULL THEN NULL
    WHEN (v -> 'stringValue') IS NOT NULL THEN to_json(v ->> 'stringValue')::VARCHAR
    WHEN (v -> 'intValue') IS NOT NULL THEN coalesce(try_cast((v ->> 'intValue') AS HUGEINT)::VARCHAR, to_json(v ->> 'intValue')::VARCHAR)
    WHEN (v -> 'boolValue') IS NOT NULL THEN CASE WHEN (v ->> 'boolValue') = 'true' THEN 'true' ELSE 'false' END
    WHEN (v -> 'doubleValue') IS NOT NULL THEN coalesce(try_cast((v ->> 'doubleValue') AS DOUBLE)::VARCHAR, to_json(v ->> 'doubleValue')::VARCHAR)
    WHEN (v -> 'bytesValue') IS NOT NULL THEN to_json(v ->> 'bytesValue')::VARCHAR
    ELSE v::VARCHAR END;

-- AnyValue to plain JSON, one level per macro (macros cannot recurse): four levels of nested
-- arrays / kvlists are converted; anything deeper keeps its AnyValue JSON.
CREATE OR REPLACE TEMP MACRO cw_any_l1(v) AS CASE
    WHEN v IS NULL THEN NULL
    WHEN json_type((v -> 'arrayValue' -> 'values')) = 'ARRAY' THEN
        '[' || array_to_string(list_transform(json_transform((v -> 'arrayValue' -> 'values'), '["JSON"]'),
            e -> coalesce(cw_any_scalar_json(e), 'null')), ',') || ']'
    WHEN json_type((v -> 'kvlistValue' -> 'values')) = 'ARRAY' THEN
        '{' || array_to_string(list_transform(
            json_transform((v -> 'kvlistValue' -> 'values'), '[{"key":"VARCHAR","value":"JSON"}]'),
            e -> to_json(coalesce(e.key, ''))::VARCHAR || ':' || coalesce(cw_any_scalar_json(e.value), 'null')), ',') || '}'
    ELSE cw_any_scalar_json(v) END;

CREATE OR REPLACE TEMP MACRO cw_any_l2(v) AS CASE
    WHEN v IS NULL THEN NULL
    WHEN json_type((v -> 'arrayValue' -> 'values')) = 'ARRAY' THEN
        '[' || array_to_string(list_transform(json_transform((v -> 'arrayValue' -> 'values'), '["JSON"]'),
            e -> coalesce(cw_any_l1(e), 'null')), ',') || ']'
    WHEN json_type((v -> 'kvlistValue' -> 'values')) = 'ARRAY' THEN
        '{' || array_to_string(list_transform(
            json_transform((v -> 'kvlistValue' -> 'values'), '[{"key":"VARCHAR","value":"JSON"}]'),
            e -> to_json(coalesce(e.key, ''))::VARCHAR || ':' || coalesce(cw_any_l1(e.value), 'null')), ',') || '}'
    ELSE cw_any_scalar_json(v) END;

CREATE OR REPLACE TEMP MACRO cw_any_l3(v) AS CASE
    WHEN v IS NULL THEN NULL
    WHEN json_type((v -> 'arrayValue' -> 'values')) = 'ARRAY' THEN
        '[' || array_to_string(list_transform(json_transform((v -> 'arrayValue' -> 'values'), '["JSON"]'),
            e -> coalesce(cw_any_l2(e), 'null')), ',') || ']'
    WHEN json_type((v -> 'kvlistValue' -> 'values')) = 'ARRAY' THEN
        '{' || array_to_string(list_transform(
            json_transform((v -> 'kvlistValue' -> 'values'), '[{"key":"VARCHAR","value":"JSON"}]'),
            e -> to_json(coalesce(e.key, ''))::VARCHAR || ':' || coalesce(cw_any_l2(e.value), 'null')), ',') || '}'
    ELSE cw_any_scalar_json(v) END;

-- An AnyValue as plain JSON: kvlists become objects, arrays become arrays.
CREATE OR REPLACE TEMP MACRO cw_any_json(v) AS CASE
    WHEN v IS NULL THEN NULL
    WHEN json_type((v -> 'arrayValue' -> 'values')) = 'ARRAY' THEN
        '[' || array_to_string(list_transform(json_transform((v -> 'arrayValue' -> 'values'), '["JSON"]'),
            e -> coalesce(cw_any_l3(e), 'null')), ',') || ']'
    WHEN json_type((v -> 'kvlistValue' -> 'values')) = 'ARRAY' THEN
        '{' || array_to_string(list_transform(
            json_transform((v -> 'kvlistValue' -> 'values'), '[{"key":"VARCHAR","value":"JSON"}]'),
            e -> to_json(coalesce(e.key, ''))::VARCHAR || ':' || coalesce(cw_any_l3(e.value), 'null')), ',') || '}'
    ELSE cw_any_scalar_json(v) END;

-- Text of an OTLP attribute by key (first match; duplicate keys are legal input, not an error).
CREATE OR REPLACE TEMP MACRO cw_attr(attrs, k) AS
    list_filter(attrs, a -> a.key = k)[1].value;

-- An AnyValue scalar as text (arrays and kvlists as their JSON; ids and names are scalars).
CREATE OR REPLACE TEMP MACRO cw_any_text(v) AS CASE
    WHEN v IS NULL THEN NULL
    WHEN (v -> 'stringValue') IS NOT NULL THEN (v ->> 'stringValue')
    ELSE trim(cw_any_scalar_json(v), '"') END;

CREATE OR REPLACE TEMP MACRO cw_attr_text(attrs, k) AS cw_any_text(cw_attr(attrs, k));

-- OTLP trace and span ids: hex per the OTLP/JSON spec, base64 from protobuf-JSON exporters.
CREATE OR REPLACE TEMP MACRO cw_otlp_id(s, nbytes) AS CASE
    WHEN s IS NULL OR s = '' THEN NULL
    WHEN length(s) = 2 * nbytes AND regexp_matches(s, '^[0-9A-Fa-f]+$') THEN lower(s)
    WHEN try(octet_length(from_base64(s))) = nbytes THEN lower(hex(from_base64(s)))
    END;

-- A JSON value's kind in words, for reject reasons.
CREATE OR REPLACE TEMP MACRO cw_json_kind(v) AS CASE json_type(v)
    WHEN 'VARCHAR' THEN 'string' WHEN 'BOOLEAN' THEN 'boolean' WHEN 'OBJECT' THEN 'object'
    WHEN 'ARRAY' THEN 'array' WHEN 'NULL' THEN 'null' ELSE 'number' END;

-- An AnyValue as text: a string as it is, anything structured as plain JSON.
CREATE OR REPLACE TEMP MACRO cw_any_doc(v) AS CASE
    WHEN v IS NULL THEN NULL
    WHEN (v -> 'stringValue') IS NOT NULL THEN v ->> 'stringValue'
    ELSE cw_any_json(v) END;

-- A JSON value as text: strings unquoted, everything else as JSON.
CREATE OR REPLACE TEMP MACRO cw_json_body(v) AS CASE
    WHEN v IS NULL OR json_type(v) = 'NULL' THEN NULL
    WHEN json_type(v) = 'VARCHAR' THEN v ->> '$'
    ELSE v::VARCHAR END;
