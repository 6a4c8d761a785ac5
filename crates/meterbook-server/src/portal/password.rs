//! Passwords: argon2id, kept in the use-case layer (it verifies sign-ins and
//! sets passwords); re-exported here for the CLI and tests that make users.

pub use meterbook_app::password::{decoy, hash, verify, MIN_LEN};
