-- Scheduled exports (see meterbook_core::exports): a schedule per row, and
-- one row per run key it has attempted. The run's primary key is what makes
-- a key run once: a claim inserts it, or takes it over only when it is due
-- again (a retry whose time has come, or a lease that ran out).
CREATE TABLE export_schedule (
    id            TEXT PRIMARY KEY,
    enrollment_id INTEGER NOT NULL REFERENCES enrollment(id),
    name          TEXT NOT NULL,
    folder        TEXT NOT NULL,
    cadence       TEXT NOT NULL,   -- daily | monthly | once
    from_day      INTEGER,         -- once: the range
    to_day        INTEGER,
    format        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    created_by    TEXT NOT NULL,
    UNIQUE (enrollment_id, name),
    UNIQUE (enrollment_id, folder)
) WITHOUT ROWID;

CREATE TABLE export_run (
    schedule_id  TEXT NOT NULL REFERENCES export_schedule(id) ON DELETE CASCADE,
    run_key      TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    status       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    lease_until  INTEGER,
    retry_at     INTEGER,
    error        TEXT,
    manifest     TEXT,
    PRIMARY KEY (schedule_id, run_key)
) WITHOUT ROWID;
