-- A report job asked for by billing period (YYYYMM) holds the rows booked in
-- that period, not the rows dated in its days; NULL: a date-range job (every
-- job made before this column was).
ALTER TABLE report_job ADD COLUMN billing_period INTEGER;
