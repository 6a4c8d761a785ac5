-- API access keys: a primary and a secondary key per scope. Only the SHA-256
-- of the secret is stored; the id part of the key finds the row.
CREATE TABLE api_key (
    id            TEXT PRIMARY KEY,
    enrollment_id INTEGER NOT NULL REFERENCES enrollment(id),
    scope_kind    INTEGER NOT NULL, -- 0 enrollment, 1 department, 2 account
    scope_id      INTEGER NOT NULL, -- department or account id; 0 for the enrollment
    slot          INTEGER NOT NULL, -- 0 primary, 1 secondary
    read_only     INTEGER NOT NULL,
    secret_hash   BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    last_used_at  INTEGER
) WITHOUT ROWID;
CREATE UNIQUE INDEX api_key_slot ON api_key (enrollment_id, scope_kind, scope_id, slot);

-- Bumped by every change to an enrollment's data; HTTP ETags derive from it.
ALTER TABLE enrollment ADD COLUMN data_version INTEGER NOT NULL DEFAULT 0;
