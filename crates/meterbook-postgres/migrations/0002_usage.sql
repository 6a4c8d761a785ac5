-- The usage ledger of the exactly-once protocol (docs/design-notes.md,
-- "Exactly once across two databases"). Facts and day sums live in the fact
-- store, each tagged with the ingest that wrote it; an ingest's rows are
-- visible only once its row here says 'committed', which happens in the same
-- transaction that adds its rollups.
CREATE TABLE usage_ingest (
    id            BIGSERIAL PRIMARY KEY,
    enrollment_id BIGINT NOT NULL REFERENCES enrollment(id),
    -- writing: facts may be in the fact store, nothing is visible;
    -- committed: visible, rollups added;
    -- abandoned: its writer gave up (a bad record, an error) and is gone:
    --   hidden until its rows are all deleted (`purged`);
    -- expired: its lease ran out and another ingest took over. Its writer
    --   may still be alive and writing, so its rows stay hidden for good.
    state         TEXT NOT NULL
                  CHECK (state IN ('writing', 'committed', 'abandoned', 'expired')),
    -- Whether its rows are all deleted (abandoned and expired ingests).
    purged        BOOLEAN NOT NULL DEFAULT FALSE,
    started_at    BIGINT NOT NULL,
    -- A writer renews its lease while it writes; past it, the next ingest
    -- of the enrollment abandons this one.
    lease_until   BIGINT NOT NULL,
    finished_at   BIGINT,
    rows_stored   BIGINT NOT NULL DEFAULT 0
);
-- One writer per enrollment at a time: commits are in id order, so the
-- highest committed id bounds what a reader sees.
CREATE UNIQUE INDEX usage_ingest_one_writer ON usage_ingest (enrollment_id) WHERE state = 'writing';
CREATE INDEX usage_ingest_by_enrollment ON usage_ingest (enrollment_id, id);

-- Totals the statement reads: quantities in Quantity's raw units (scale 6),
-- fixed costs (corrections) in Amount's raw units (scale 18).
CREATE TABLE usage_rollup (
    enrollment_id BIGINT NOT NULL REFERENCES enrollment(id),
    booked        INTEGER NOT NULL,
    meter_key     BIGINT NOT NULL,
    rate_period   INTEGER NOT NULL,
    correction    BOOLEAN NOT NULL,
    quantity      BIGINT NOT NULL,
    fixed_cost    NUMERIC(40, 0) NOT NULL,
    rows          BIGINT NOT NULL,
    PRIMARY KEY (enrollment_id, booked, meter_key, rate_period, correction)
);
