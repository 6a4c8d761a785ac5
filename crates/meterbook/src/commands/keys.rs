//! keys create: the operator makes an API access key for an enrollment scope.

use super::enrollment_number;
use crate::cli::{KeysCmd, OperatorTokenCmd};
use anyhow::{Context, Result};
use meterbook_core::access::KeyStore;
use meterbook_core::access::{KeyRecord, Scope, Slot};
use meterbook_core::store::MetadataStore;
use meterbook_core::EnrollmentNumber;
use meterbook_sqlite::SqliteStore;

pub fn run(s: &SqliteStore, c: KeysCmd) -> Result<()> {
    let KeysCmd::Create {
        enrollment,
        department,
        account,
        slot,
        expires_in_days,
        read_only,
    } = c;
    let n = enrollment_number(&enrollment)?;
    let h = s.hierarchy(&n)?;
    let scope = match (department, account) {
        (Some(d), _) => Scope::Department(
            h.department_by_name(&d)
                .with_context(|| format!("no department {d}"))?
                .id,
        ),
        (_, Some(a)) => Scope::Account(
            h.account_by_name(&a)
                .with_context(|| format!("no account {a}"))?
                .id,
        ),
        _ => Scope::Enrollment,
    };
    let slot = Slot::parse(&slot).context("--slot must be primary or secondary")?;
    let replaced = s
        .keys(&n)?
        .into_iter()
        .find(|k| k.scope == scope && k.slot == slot);
    let (token, rec) = create_key(s, &n, scope, slot, expires_in_days, read_only)?;
    println!("{token}");
    if let Some(old) = replaced {
        // Regenerating is how a slot is rotated, but it silently breaks whoever
        // used the old key (the demo's key, a pipeline's): say so.
        let other = match slot {
            Slot::Primary => "secondary",
            Slot::Secondary => "primary",
        };
        eprintln!(
            "replaced the {} key in the {} slot (made {}): that key no longer works; \
             to add a key beside it instead, use --slot {other}",
            scope.kind(),
            slot.as_str(),
            date(old.created_at)
        );
    }
    eprintln!(
        "{} key ({} slot) for enrollment {n}, expires {}; shown once, stored only as a hash",
        scope.kind(),
        slot.as_str(),
        date(rec.expires_at)
    );
    Ok(())
}

fn date(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|d| d.date_naive().to_string())
        .unwrap_or_default()
}

/// Generates and stores a key; returns the key string (shown once) and its record.
pub fn create_key(
    s: &SqliteStore,
    n: &EnrollmentNumber,
    scope: Scope,
    slot: Slot,
    days: u32,
    read_only: bool,
) -> Result<(String, KeyRecord)> {
    anyhow::ensure!(days >= 1, "--expires-in-days must be at least 1");
    let k =
        meterbook_server::keys::generate().map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let now = chrono::Utc::now().timestamp();
    let rec = KeyRecord {
        id: k.id,
        enrollment: n.clone(),
        scope,
        slot,
        read_only,
        secret_hash: k.secret_hash,
        created_at: now,
        expires_at: now + days as i64 * 86_400,
        disabled: false,
        last_used_at: None,
    };
    s.put_key(&rec)?;
    Ok((k.token, rec))
}

/// Generates an operator token (for the operator API); prints it once.
pub fn operator_token(s: &SqliteStore, c: OperatorTokenCmd) -> Result<()> {
    use meterbook_core::access::OperatorStore;
    match c {
        OperatorTokenCmd::Create { name } => {
            let k = meterbook_server::keys::generate_with(meterbook_server::keys::OPERATOR_PREFIX)
                .map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            s.put_operator_token(&meterbook_core::access::OperatorToken {
                id: k.id,
                name: name.clone(),
                secret_hash: k.secret_hash,
                created_at: chrono::Utc::now().timestamp(),
                disabled: false,
            })?;
            println!("{}", k.token);
            eprintln!("operator token \"{name}\"; shown once, stored only as a hash");
        }
        OperatorTokenCmd::List => {
            println!("id\tcreated\tstate\tname");
            for t in s.operator_tokens()? {
                let created = chrono::DateTime::from_timestamp(t.created_at, 0)
                    .map(|d| d.format("%Y-%m-%d %H:%M:%SZ").to_string())
                    .unwrap_or_default();
                let state = if t.disabled { "disabled" } else { "enabled" };
                println!("{}\t{created}\t{state}\t{}", t.id, t.name);
            }
        }
        OperatorTokenCmd::Disable { id } | OperatorTokenCmd::Enable { id } if id.is_empty() => {
            anyhow::bail!("give the token's id (see `operator-token list`)")
        }
        OperatorTokenCmd::Disable { id } => {
            if !s.set_operator_token_disabled(&id, true)? {
                anyhow::bail!("no operator token {id} (see `operator-token list`)");
            }
            println!("operator token {id} disabled");
        }
        OperatorTokenCmd::Enable { id } => {
            if !s.set_operator_token_disabled(&id, false)? {
                anyhow::bail!("no operator token {id} (see `operator-token list`)");
            }
            println!("operator token {id} enabled");
        }
    }
    Ok(())
}
