-- Portal users, their roles per enrollment, sessions, set-password tokens and
-- the audit log. Only hashes of secrets are stored.
CREATE TABLE app_user (
    id            INTEGER PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    password_hash TEXT,
    created_at    INTEGER NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0
);

-- One role per user and enrollment: scope_kind 0 enterprise, 1 department, 2 account.
CREATE TABLE user_role (
    user_id       INTEGER NOT NULL REFERENCES app_user(id),
    enrollment_id INTEGER NOT NULL REFERENCES enrollment(id),
    scope_kind    INTEGER NOT NULL,
    scope_id      INTEGER NOT NULL,
    read_only     INTEGER NOT NULL,
    PRIMARY KEY (user_id, enrollment_id)
) WITHOUT ROWID;
CREATE INDEX user_role_by_enrollment ON user_role (enrollment_id);

CREATE TABLE user_session (
    token_hash   BLOB PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES app_user(id),
    csrf         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX user_session_by_user ON user_session (user_id);

CREATE TABLE password_token (
    token_hash BLOB PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES app_user(id),
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY,
    enrollment_id INTEGER NOT NULL REFERENCES enrollment(id),
    at            INTEGER NOT NULL,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    detail        TEXT NOT NULL
);
CREATE INDEX audit_log_by_enrollment ON audit_log (enrollment_id, id);
