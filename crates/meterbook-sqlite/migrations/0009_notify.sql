-- Budgets, notification channels, events and the delivery outbox
-- (meterbook_core::notify; docs/design-notes.md, "Budgets and alerts").
-- Times are Unix milliseconds; amounts in the currency's minor unit.

-- AUTOINCREMENT: a deleted budget's id is never handed out again, so the
-- events keyed by it can never silence a later budget.
CREATE TABLE budget (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    enrollment_id INTEGER NOT NULL REFERENCES enrollment(id),
    name          TEXT NOT NULL,
    scope         TEXT NOT NULL,     -- enrollment, department:ID, account:ID
    cadence       TEXT NOT NULL,     -- monthly, term
    amount        INTEGER NOT NULL,
    thresholds    TEXT NOT NULL,     -- actual:80,forecast:100,balance:10
    created_at    INTEGER NOT NULL,
    created_by    TEXT NOT NULL
);
CREATE INDEX budget_by_enrollment ON budget (enrollment_id, id);

CREATE TABLE notify_channel (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    enrollment_id INTEGER NOT NULL REFERENCES enrollment(id),
    kind          TEXT NOT NULL,     -- email, webhook
    address       TEXT NOT NULL,     -- the e-mail address or the URL
    events        TEXT NOT NULL,     -- alert,period-closed,watermark
    salt          BLOB NOT NULL,     -- the webhook secret is derived from it, never stored
    created_at    INTEGER NOT NULL,
    created_by    TEXT NOT NULL
);
CREATE INDEX notify_channel_by_enrollment ON notify_channel (enrollment_id, id);

-- One event per enrollment and dedupe key, ever: what makes an alert fire once.
CREATE TABLE notify_event (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    enrollment_id INTEGER NOT NULL REFERENCES enrollment(id),
    kind          TEXT NOT NULL,
    dedupe_key    TEXT NOT NULL,
    budget_id     INTEGER,           -- no reference: the event outlives its budget
    fired_at      INTEGER NOT NULL,
    payload       TEXT NOT NULL,
    UNIQUE (enrollment_id, dedupe_key)
);

-- The outbox: written in the event's transaction, drained by delivery workers.
CREATE TABLE notify_delivery (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    enrollment_id   INTEGER NOT NULL REFERENCES enrollment(id),
    event_id        INTEGER NOT NULL REFERENCES notify_event(id),
    target_kind     TEXT NOT NULL,   -- email, webhook
    address         TEXT,            -- e-mail
    channel_id      INTEGER,         -- webhook
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL,   -- pending, delivered, failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER
);
CREATE INDEX notify_delivery_by_enrollment ON notify_delivery (enrollment_id, id);
-- Workers look among the pending ones only.
CREATE INDEX notify_delivery_due ON notify_delivery (next_attempt_at, id) WHERE status = 'pending';
