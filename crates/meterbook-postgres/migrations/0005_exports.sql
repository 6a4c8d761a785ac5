-- Scheduled exports (see meterbook_core::exports): a schedule per row, and
-- one row per run key it has attempted. A claim locks the schedule's row, so
-- two nodes claiming the same key at once take turns, and the second sees
-- the first's run (running under a live lease) and leaves it.
CREATE TABLE export_schedule (
    id            TEXT PRIMARY KEY,
    enrollment_id BIGINT NOT NULL REFERENCES enrollment(id),
    name          TEXT NOT NULL,
    folder        TEXT NOT NULL,
    cadence       TEXT NOT NULL,   -- daily | monthly | once
    from_day      INTEGER,         -- once: the range
    to_day        INTEGER,
    format        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    created_by    TEXT NOT NULL,
    UNIQUE (enrollment_id, name),
    UNIQUE (enrollment_id, folder)
);

CREATE TABLE export_run (
    schedule_id  TEXT NOT NULL REFERENCES export_schedule(id) ON DELETE CASCADE,
    run_key      TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    status       SMALLINT NOT NULL,
    attempts     INTEGER NOT NULL,
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    lease_until  BIGINT,
    retry_at     BIGINT,
    error        TEXT,
    manifest     TEXT,
    PRIMARY KEY (schedule_id, run_key)
);
