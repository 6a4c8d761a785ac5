-- Budgets, notification channels, events and the delivery outbox
-- (meterbook_core::notify; docs/design-notes.md, "Budgets and alerts").
-- Times are Unix milliseconds; amounts in the currency's minor unit.
-- Sequences never hand out an id twice, so an event keyed by a deleted
-- budget's id can never silence a later budget.

CREATE TABLE budget (
    id            BIGSERIAL PRIMARY KEY,
    enrollment_id BIGINT NOT NULL REFERENCES enrollment(id),
    name          TEXT NOT NULL,
    scope         TEXT NOT NULL,
    cadence       TEXT NOT NULL,
    amount        BIGINT NOT NULL,
    thresholds    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    created_by    TEXT NOT NULL
);
CREATE INDEX budget_by_enrollment ON budget (enrollment_id, id);

CREATE TABLE notify_channel (
    id            BIGSERIAL PRIMARY KEY,
    enrollment_id BIGINT NOT NULL REFERENCES enrollment(id),
    kind          TEXT NOT NULL,
    address       TEXT NOT NULL,
    events        TEXT NOT NULL,
    salt          BYTEA NOT NULL,
    created_at    BIGINT NOT NULL,
    created_by    TEXT NOT NULL
);
CREATE INDEX notify_channel_by_enrollment ON notify_channel (enrollment_id, id);

-- One event per enrollment and dedupe key, ever: nodes evaluating at once
-- insert it ON CONFLICT DO NOTHING, and only the one that inserted it queues
-- its deliveries.
CREATE TABLE notify_event (
    id            BIGSERIAL PRIMARY KEY,
    enrollment_id BIGINT NOT NULL REFERENCES enrollment(id),
    kind          TEXT NOT NULL,
    dedupe_key    TEXT COLLATE "C" NOT NULL,
    budget_id     BIGINT,
    fired_at      BIGINT NOT NULL,
    payload       TEXT NOT NULL,
    UNIQUE (enrollment_id, dedupe_key)
);

CREATE TABLE notify_delivery (
    id              BIGSERIAL PRIMARY KEY,
    enrollment_id   BIGINT NOT NULL REFERENCES enrollment(id),
    event_id        BIGINT NOT NULL REFERENCES notify_event(id),
    target_kind     TEXT NOT NULL,
    address         TEXT,
    channel_id      BIGINT,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT
);
CREATE INDEX notify_delivery_by_enrollment ON notify_delivery (enrollment_id, id);
CREATE INDEX notify_delivery_due ON notify_delivery (next_attempt_at, id) WHERE status = 'pending';
