-- Usage facts as column blocks per (enrollment, day), a hashed RecordId index
-- and a day's sums in one value. The rows of usage_fact and usage_daily are
-- converted by code (usage/migrate.rs) right after this script, in the same
-- transaction, and the old tables dropped.

-- The seed of the store's hashes (RecordIds, profiles): random per database,
-- so no producer can choose ids that collide.
CREATE TABLE usage_seed (seed INTEGER NOT NULL);
INSERT INTO usage_seed VALUES (random());

-- One block: the rows of one (enrollment, day) written together, sorted by
-- RecordId, encoded column by column. A day may have several blocks; scans
-- merge them by RecordId, and an ingest merges a day's blocks when they
-- become many.
CREATE TABLE usage_block (
    id            INTEGER PRIMARY KEY,
    enrollment_id INTEGER NOT NULL,
    day           INTEGER NOT NULL,
    rows          INTEGER NOT NULL,
    data          BLOB NOT NULL
);
CREATE INDEX usage_block_day ON usage_block (enrollment_id, day, id);

-- The days that hold corrections booked in a period (few): a booked
-- period's scan reads its own days, then these.
CREATE TABLE usage_correction_day (
    enrollment_id INTEGER NOT NULL,
    booked        INTEGER NOT NULL,
    day           INTEGER NOT NULL,
    PRIMARY KEY (enrollment_id, booked, day)
) WITHOUT ROWID;

-- RecordId index: sorted runs of 8-byte keys (hash prefix, day, flag), in
-- parts of up to 64Ki keys.
CREATE TABLE usage_key (
    id            INTEGER PRIMARY KEY,
    enrollment_id INTEGER NOT NULL,
    run           INTEGER NOT NULL,
    part          INTEGER NOT NULL,
    data          BLOB NOT NULL
);
CREATE INDEX usage_key_run ON usage_key (enrollment_id, run, part);

-- A day's sums per (subscription, meter, booking): one encoded value per day.
CREATE TABLE usage_day (
    enrollment_id INTEGER NOT NULL,
    day           INTEGER NOT NULL,
    data          BLOB NOT NULL,
    PRIMARY KEY (enrollment_id, day)
);

-- Profiles found by a hash of their text instead of a unique text index.
ALTER TABLE usage_profile RENAME TO usage_profile_old;
CREATE TABLE usage_profile (
    id    INTEGER PRIMARY KEY,
    hash  INTEGER NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX usage_profile_hash ON usage_profile (hash);
