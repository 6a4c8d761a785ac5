-- Advanced report jobs (see meterbook_core::jobs). A job is a row here from
-- request to retention clean-up; the worker's lease lets another process take
-- over a job whose worker died.
CREATE TABLE report_job (
    id            TEXT PRIMARY KEY,
    enrollment_id INTEGER NOT NULL REFERENCES enrollment(id),
    scope         TEXT NOT NULL,
    from_day      INTEGER NOT NULL,
    to_day        INTEGER NOT NULL,
    accounts      TEXT NOT NULL,   -- JSON array of names
    departments   TEXT NOT NULL,   -- JSON array of names
    format        TEXT NOT NULL,
    dedupe_key    TEXT NOT NULL,
    requested_by  TEXT NOT NULL,
    requested_at  INTEGER NOT NULL,
    status        INTEGER NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER,
    rows_done     INTEGER NOT NULL DEFAULT 0,
    rows_expected INTEGER,
    bytes         INTEGER NOT NULL DEFAULT 0,
    error         TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    lease_until   INTEGER,
    manifest      TEXT
) WITHOUT ROWID;

CREATE INDEX report_job_by_enrollment ON report_job (enrollment_id, requested_at);
-- Workers look for work among the unfinished jobs only.
CREATE INDEX report_job_open ON report_job (status, requested_at) WHERE status IN (1, 2);

-- Server secrets (the download-link signing key), made once per database.
CREATE TABLE server_secret (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
