-- The ledger: enrollments, hierarchy, prices, periods, commitment entries,
-- keys, operator tokens, report jobs, users. The same tables as the embedded
-- SQLite store (its migrations 0001-0007 taken together), in PostgreSQL's
-- own types:
--   * days are INTEGER day numbers and periods INTEGER YYYYMM ids, as there;
--   * quantities (scale 6) and money in minor units are BIGINT;
--   * rates (Price, i128 at scale 12) and exact amounts (Amount, i128 at
--     scale 18) are the raw integer in NUMERIC(40, 0), which holds every
--     i128; the code moves them as decimal text, never through a float;
--   * hashes are BYTEA, flags BOOLEAN, Unix-second times BIGINT.
-- Texts that are listed in order (numbers, MeterIds, e-mails, ids) compare
-- byte by byte (COLLATE "C"), as SQLite does, whatever the database's locale.

CREATE TABLE enrollment (
    id          BIGSERIAL PRIMARY KEY,
    number      TEXT COLLATE "C" NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    currency    TEXT NOT NULL,
    start_day   INTEGER NOT NULL,
    end_day     INTEGER NOT NULL,
    dept_admins_view_charges    BOOLEAN NOT NULL DEFAULT FALSE,
    account_owners_view_charges BOOLEAN NOT NULL DEFAULT FALSE,
    watermark   INTEGER,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Bumped by every change to the enrollment's data; HTTP ETags derive from it.
    data_version BIGINT NOT NULL DEFAULT 0,
    -- Bumped by every change to what an ingest validates against
    -- (subscriptions, price sheets, closed periods, locked rates), in the
    -- transaction that makes it: an ingest that read the catalog at an
    -- older version must not commit.
    catalog_version BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE department (
    id            BIGSERIAL PRIMARY KEY,
    enrollment_id BIGINT NOT NULL REFERENCES enrollment(id),
    name          TEXT NOT NULL,
    cost_center   TEXT NOT NULL,
    UNIQUE (enrollment_id, name)
);

CREATE TABLE account (
    id            BIGSERIAL PRIMARY KEY,
    enrollment_id BIGINT NOT NULL REFERENCES enrollment(id),
    name          TEXT NOT NULL,
    owner_email   TEXT NOT NULL,
    cost_center   TEXT NOT NULL,
    department_id BIGINT REFERENCES department(id),
    UNIQUE (enrollment_id, name)
);

CREATE TABLE subscription (
    id            BIGSERIAL PRIMARY KEY,
    enrollment_id BIGINT NOT NULL REFERENCES enrollment(id),
    guid          TEXT NOT NULL,
    name          TEXT NOT NULL,
    UNIQUE (enrollment_id, guid)
);

-- Which account owns a subscription from which day on.
CREATE TABLE subscription_owner (
    subscription_id BIGINT NOT NULL REFERENCES subscription(id),
    effective_day   INTEGER NOT NULL,
    account_id      BIGINT NOT NULL REFERENCES account(id),
    PRIMARY KEY (subscription_id, effective_day)
);

-- Meter keys: one integer per MeterId and enrollment.
CREATE TABLE meter (
    id            BIGSERIAL PRIMARY KEY,
    enrollment_id BIGINT NOT NULL REFERENCES enrollment(id),
    meter_id      TEXT COLLATE "C" NOT NULL,
    UNIQUE (enrollment_id, meter_id)
);

-- A period's price sheet. Tiers are two arrays of the same length, in
-- ascending order of their minimum: minimum quantities (raw, scale 6) and
-- rates (raw, scale 12).
CREATE TABLE price (
    enrollment_id      BIGINT NOT NULL REFERENCES enrollment(id),
    period             INTEGER NOT NULL,
    meter_key          BIGINT NOT NULL REFERENCES meter(id),
    meter_name         TEXT NOT NULL,
    meter_category     TEXT NOT NULL,
    meter_sub_category TEXT NOT NULL,
    meter_region       TEXT NOT NULL,
    unit_of_measure    TEXT NOT NULL,
    part_number        TEXT NOT NULL,
    billed_separately  BOOLEAN NOT NULL,
    publisher_name     TEXT NOT NULL,
    offer_name         TEXT NOT NULL,
    plan_name          TEXT NOT NULL,
    included           BIGINT NOT NULL,
    tier_min           BIGINT[] NOT NULL,
    tier_price         NUMERIC(40, 0)[] NOT NULL,
    CHECK (cardinality(tier_min) = cardinality(tier_price)),
    PRIMARY KEY (enrollment_id, period, meter_key)
);

CREATE TABLE closed_period (
    enrollment_id BIGINT NOT NULL REFERENCES enrollment(id),
    period        INTEGER NOT NULL,
    closed_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (enrollment_id, period)
);

CREATE TABLE locked_rate (
    enrollment_id BIGINT NOT NULL REFERENCES enrollment(id),
    period        INTEGER NOT NULL,
    meter_key     BIGINT NOT NULL,
    rate          NUMERIC(40, 0) NOT NULL,
    PRIMARY KEY (enrollment_id, period, meter_key)
);

CREATE TABLE commitment_entry (
    id            BIGSERIAL PRIMARY KEY,
    enrollment_id BIGINT NOT NULL REFERENCES enrollment(id),
    kind          SMALLINT NOT NULL CHECK (kind IN (0, 1)), -- 0 purchase, 1 adjustment
    day           INTEGER NOT NULL,
    amount        BIGINT NOT NULL, -- minor units
    description   TEXT NOT NULL
);
CREATE INDEX commitment_entry_by_enrollment ON commitment_entry (enrollment_id, day);

-- API access keys: a primary and a secondary key per scope. Only the SHA-256
-- of the secret is stored; the id part of the key finds the row.
CREATE TABLE api_key (
    id            TEXT PRIMARY KEY,
    enrollment_id BIGINT NOT NULL REFERENCES enrollment(id),
    scope_kind    SMALLINT NOT NULL, -- 0 enrollment, 1 department, 2 account
    scope_id      BIGINT NOT NULL,   -- department or account id; 0 for the enrollment
    slot          SMALLINT NOT NULL, -- 0 primary, 1 secondary
    read_only     BOOLEAN NOT NULL,
    secret_hash   BYTEA NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    last_used_at  BIGINT
);
CREATE UNIQUE INDEX api_key_slot ON api_key (enrollment_id, scope_kind, scope_id, slot);

-- Operator tokens: the provider's credentials for the operator API. Separate
-- from customer API keys (different prefix, different table): a customer key
-- can never reach an operator endpoint.
CREATE TABLE operator_token (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    disabled    BOOLEAN NOT NULL DEFAULT FALSE
);

-- Advanced report jobs (see meterbook_core::jobs). A job is a row here from
-- request to retention clean-up; the worker's lease lets another process take
-- over a job whose worker died.
CREATE TABLE report_job (
    id             TEXT COLLATE "C" PRIMARY KEY,
    enrollment_id  BIGINT NOT NULL REFERENCES enrollment(id),
    scope          TEXT NOT NULL,
    from_day       INTEGER NOT NULL,
    to_day         INTEGER NOT NULL,
    accounts       TEXT NOT NULL,   -- JSON array of names
    departments    TEXT NOT NULL,   -- JSON array of names
    format         TEXT NOT NULL,
    dedupe_key     TEXT NOT NULL,
    requested_by   TEXT NOT NULL,
    requested_at   BIGINT NOT NULL,
    status         SMALLINT NOT NULL,
    started_at     BIGINT,
    finished_at    BIGINT,
    rows_done      BIGINT NOT NULL DEFAULT 0,
    rows_expected  BIGINT,
    bytes          BIGINT NOT NULL DEFAULT 0,
    error          TEXT,
    attempts       INTEGER NOT NULL DEFAULT 0,
    lease_until    BIGINT,
    manifest       TEXT,
    -- A job asked for by billing period (YYYYMM) holds the rows booked in
    -- that period; NULL: a date-range job.
    billing_period INTEGER
);
CREATE INDEX report_job_by_enrollment ON report_job (enrollment_id, requested_at);
-- Workers look for work among the unfinished jobs only.
CREATE INDEX report_job_open ON report_job (status, requested_at) WHERE status IN (1, 2);
-- At most one unfinished job per request: SQLite's single writer made the
-- check in submit_job enough; here two nodes may submit at once.
CREATE UNIQUE INDEX report_job_open_dedupe ON report_job (enrollment_id, dedupe_key) WHERE status IN (1, 2);

-- Server secrets (the download-link signing key), made once per database.
CREATE TABLE server_secret (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

-- Portal users, their roles per enrollment, sessions, set-password tokens and
-- the audit log. Only hashes of secrets are stored.
CREATE TABLE app_user (
    id            BIGSERIAL PRIMARY KEY,
    email         TEXT COLLATE "C" NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    password_hash TEXT,
    created_at    BIGINT NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE
);

-- One role per user and enrollment: scope_kind 0 enterprise, 1 department, 2 account.
CREATE TABLE user_role (
    user_id       BIGINT NOT NULL REFERENCES app_user(id),
    enrollment_id BIGINT NOT NULL REFERENCES enrollment(id),
    scope_kind    SMALLINT NOT NULL,
    scope_id      BIGINT NOT NULL,
    read_only     BOOLEAN NOT NULL,
    PRIMARY KEY (user_id, enrollment_id)
);
CREATE INDEX user_role_by_enrollment ON user_role (enrollment_id);

CREATE TABLE user_session (
    token_hash   BYTEA PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES app_user(id),
    csrf         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX user_session_by_user ON user_session (user_id);

CREATE TABLE password_token (
    token_hash BYTEA PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES app_user(id),
    expires_at BIGINT NOT NULL
);
CREATE INDEX password_token_by_user ON password_token (user_id);

CREATE TABLE audit_log (
    id            BIGSERIAL PRIMARY KEY,
    enrollment_id BIGINT NOT NULL REFERENCES enrollment(id),
    at            BIGINT NOT NULL,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    detail        TEXT NOT NULL
);
CREATE INDEX audit_log_by_enrollment ON audit_log (enrollment_id, id);
