-- Usage per day, subscription and meter, kept in the ingest transaction like
-- usage_rollup: the portal's summaries and charts (by department, account,
-- subscription or service, inside a scope) read this, never the facts.
-- booked is 0 and correction_rate '' for rows booked in their own period.
CREATE TABLE usage_daily (
    enrollment_id   INTEGER NOT NULL,
    day             INTEGER NOT NULL,
    subscription_id INTEGER NOT NULL,
    meter_key       INTEGER NOT NULL,
    booked          INTEGER NOT NULL,
    correction_rate TEXT NOT NULL,
    quantity        INTEGER NOT NULL,
    rows            INTEGER NOT NULL,
    PRIMARY KEY (enrollment_id, day, subscription_id, meter_key, booked, correction_rate)
) WITHOUT ROWID;

INSERT INTO usage_daily
SELECT enrollment_id, day, subscription_id, meter_key, COALESCE(booked, 0),
       COALESCE(correction_rate, ''), SUM(quantity), COUNT(*)
FROM usage_fact
GROUP BY enrollment_id, day, subscription_id, meter_key, COALESCE(booked, 0), COALESCE(correction_rate, '');
