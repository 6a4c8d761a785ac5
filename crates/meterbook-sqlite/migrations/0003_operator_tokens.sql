-- Operator tokens: the provider's credentials for the operator API. Separate
-- from customer API keys (different prefix, different table): a customer key
-- can never reach an operator endpoint.
CREATE TABLE operator_token (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    disabled    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
