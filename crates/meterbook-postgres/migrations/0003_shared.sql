-- What every serve node shares between requests (meterbook_core::shared;
-- docs/design-notes.md, "Beyond one machine"): failed-attempt counters of
-- the sign-in throttles, API rate-limit buckets, and new API keys waiting
-- for their one-time display. Rows are short-lived: expired ones are swept.

-- A failed-attempt counter: `count` attempts since `window_start` (Unix s).
CREATE TABLE shared_counter (
    key          TEXT PRIMARY KEY,
    count        BIGINT NOT NULL,
    window_start BIGINT NOT NULL
);
CREATE INDEX shared_counter_by_start ON shared_counter (window_start);

-- A token bucket: `level` micro-tokens at `at_ms` (Unix ms); `touched_ms`
-- when the key's last use was last due to be recorded; `outcome` of the
-- last take (0 refused, 1 taken, 2 taken and the use due to be recorded),
-- so one upsert both changes and answers.
CREATE TABLE shared_bucket (
    key        TEXT PRIMARY KEY,
    level      BIGINT NOT NULL,
    at_ms      BIGINT NOT NULL,
    touched_ms BIGINT,
    outcome    SMALLINT NOT NULL
);
CREATE INDEX shared_bucket_by_at ON shared_bucket (at_ms);

-- A new API key held for its page, per session (its token's SHA-256) and
-- enrollment: sealed with ChaCha20-Poly1305 (`nonce`, `sealed`), never in
-- plain text (src/shared.rs says how).
CREATE TABLE shared_key_flash (
    session    BYTEA NOT NULL,
    enrollment TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    nonce      BYTEA NOT NULL,
    sealed     BYTEA NOT NULL,
    PRIMARY KEY (session, enrollment)
);
CREATE INDEX shared_key_flash_by_created ON shared_key_flash (created_at);
