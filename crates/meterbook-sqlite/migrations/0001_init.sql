-- Meterbook schema, version 1.
-- Money and quantities are integers in fixed units (see meterbook_core::fixed);
-- i128 values (rates, exact amounts) are stored as decimal text of the raw integer.

CREATE TABLE enrollment (
    id          INTEGER PRIMARY KEY,
    number      TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    currency    TEXT NOT NULL,
    start_day   INTEGER NOT NULL,
    end_day     INTEGER NOT NULL,
    dept_admins_view_charges   INTEGER NOT NULL DEFAULT 0,
    account_owners_view_charges INTEGER NOT NULL DEFAULT 0,
    watermark   INTEGER,
    created_at  TEXT NOT NULL
);

CREATE TABLE department (
    id            INTEGER PRIMARY KEY,
    enrollment_id INTEGER NOT NULL REFERENCES enrollment(id),
    name          TEXT NOT NULL,
    cost_center   TEXT NOT NULL,
    UNIQUE (enrollment_id, name)
);

CREATE TABLE account (
    id            INTEGER PRIMARY KEY,
    enrollment_id INTEGER NOT NULL REFERENCES enrollment(id),
    name          TEXT NOT NULL,
    owner_email   TEXT NOT NULL,
    cost_center   TEXT NOT NULL,
    department_id INTEGER REFERENCES department(id),
    UNIQUE (enrollment_id, name)
);

CREATE TABLE subscription (
    id            INTEGER PRIMARY KEY,
    enrollment_id INTEGER NOT NULL REFERENCES enrollment(id),
    guid          TEXT NOT NULL,
    name          TEXT NOT NULL,
    UNIQUE (enrollment_id, guid)
);

-- Which account owns a subscription from which day on.
CREATE TABLE subscription_owner (
    subscription_id INTEGER NOT NULL REFERENCES subscription(id),
    effective_day   INTEGER NOT NULL,
    account_id      INTEGER NOT NULL REFERENCES account(id),
    PRIMARY KEY (subscription_id, effective_day)
) WITHOUT ROWID;

-- Meter keys: one integer per MeterId and enrollment.
CREATE TABLE meter (
    id            INTEGER PRIMARY KEY,
    enrollment_id INTEGER NOT NULL REFERENCES enrollment(id),
    meter_id      TEXT NOT NULL,
    UNIQUE (enrollment_id, meter_id)
);

CREATE TABLE price (
    enrollment_id     INTEGER NOT NULL,
    period            INTEGER NOT NULL,
    meter_key         INTEGER NOT NULL REFERENCES meter(id),
    meter_name        TEXT NOT NULL,
    meter_category    TEXT NOT NULL,
    meter_sub_category TEXT NOT NULL,
    meter_region      TEXT NOT NULL,
    unit_of_measure   TEXT NOT NULL,
    part_number       TEXT NOT NULL,
    billed_separately INTEGER NOT NULL,
    publisher_name    TEXT NOT NULL,
    offer_name        TEXT NOT NULL,
    plan_name         TEXT NOT NULL,
    included          INTEGER NOT NULL,
    -- "min:price" pairs of raw integers, ';'-separated, ascending.
    tiers             TEXT NOT NULL,
    PRIMARY KEY (enrollment_id, period, meter_key)
) WITHOUT ROWID;

CREATE TABLE closed_period (
    enrollment_id INTEGER NOT NULL,
    period        INTEGER NOT NULL,
    closed_at     TEXT NOT NULL,
    PRIMARY KEY (enrollment_id, period)
) WITHOUT ROWID;

CREATE TABLE locked_rate (
    enrollment_id INTEGER NOT NULL,
    period        INTEGER NOT NULL,
    meter_key     INTEGER NOT NULL,
    rate          TEXT NOT NULL,
    PRIMARY KEY (enrollment_id, period, meter_key)
) WITHOUT ROWID;

CREATE TABLE commitment_entry (
    id            INTEGER PRIMARY KEY,
    enrollment_id INTEGER NOT NULL REFERENCES enrollment(id),
    kind          INTEGER NOT NULL, -- 0 purchase, 1 adjustment
    day           INTEGER NOT NULL,
    amount        INTEGER NOT NULL, -- minor units
    description   TEXT NOT NULL
);
CREATE INDEX commitment_entry_by_enrollment ON commitment_entry (enrollment_id, day);

-- The descriptive fields of usage records (InstanceId, ResourceGroup,
-- ResourceLocation, ConsumedService, Tags, AdditionalInfo, ServiceInfo1/2)
-- repeat for every day a resource runs: each distinct combination is stored
-- once, as length-prefixed fields ("len:value" eight times), and facts refer
-- to it by id. Id 0 is the combination of eight empty fields.
CREATE TABLE usage_profile (
    id    INTEGER PRIMARY KEY,
    value TEXT NOT NULL UNIQUE
);

-- Usage facts, narrow: integer keys, fixed-point quantity, a profile id.
-- Clustered by (enrollment, day, record id): exports read in key order with no
-- sort, and the order does not depend on arrival order.
CREATE TABLE usage_fact (
    enrollment_id     INTEGER NOT NULL,
    day               INTEGER NOT NULL,
    record_id         TEXT NOT NULL,
    subscription_id   INTEGER NOT NULL,
    meter_key         INTEGER NOT NULL,
    quantity          INTEGER NOT NULL,
    profile_id        INTEGER NOT NULL,
    -- Set only for corrections (rows dated in a closed period): where they are
    -- booked and their locked rate. Other rows are booked in their day's period.
    booked            INTEGER,
    correction_rate   TEXT,
    PRIMARY KEY (enrollment_id, day, record_id)
) WITHOUT ROWID;
-- RecordId is the idempotency key within an enrollment.
CREATE UNIQUE INDEX usage_fact_record ON usage_fact (enrollment_id, record_id);
-- Corrections are few: a partial index finds those booked in a period.
CREATE INDEX usage_fact_correction ON usage_fact (enrollment_id, booked) WHERE booked IS NOT NULL;

-- Maintained in the same transaction as the facts: statements read only this.
CREATE TABLE usage_rollup (
    enrollment_id INTEGER NOT NULL,
    booked        INTEGER NOT NULL,
    meter_key     INTEGER NOT NULL,
    rate_period   INTEGER NOT NULL,
    correction    INTEGER NOT NULL,
    quantity      INTEGER NOT NULL,
    fixed_cost    TEXT NOT NULL,
    rows          INTEGER NOT NULL,
    PRIMARY KEY (enrollment_id, booked, meter_key, rate_period, correction)
) WITHOUT ROWID;
