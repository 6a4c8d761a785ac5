//! keys create: the operator makes an API access key for an enrollment scope.

use super::enrollment_number;
use crate::cli::{KeysCmd, OperatorTokenCmd};
use anyhow::{Context, Result};
use meterbook_app::Operator;
use meterbook_core::access::{KeyRecord, Scope, Slot};
use meterbook_core::EnrollmentNumber;

pub fn run(op: &Operator, c: KeysCmd) -> Result<()> {
    let KeysCmd::Create {
        enrollment,
        department,
        account,
        slot,
        expires_in_days,
        read_only,
    } = c;
    let n = enrollment_number(&enrollment)?;
    let h = op.enrollment(&n)?.hierarchy()?;
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
    let (token, rec, replaced) = create_key(op, &n, scope, slot, expires_in_days, read_only)?;
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

/// Generates and stores a key; returns the key string (shown once), its
/// record, and the key it replaced.
pub fn create_key(
    op: &Operator,
    n: &EnrollmentNumber,
    scope: Scope,
    slot: Slot,
    days: u32,
    read_only: bool,
) -> Result<(String, KeyRecord, Option<KeyRecord>)> {
    anyhow::ensure!(days >= 1, "--expires-in-days must be at least 1");
    let (new, replaced) = op.scope_key(n, scope, slot, days, read_only)?;
    Ok((new.token, new.record, replaced))
}

/// Generates an operator token (for the operator API); prints it once.
pub fn operator_token(op: &Operator, c: OperatorTokenCmd) -> Result<()> {
    match c {
        OperatorTokenCmd::Create { name } => {
            let k = op.create_operator_token(&name)?;
            println!("{}", k.token);
            eprintln!("operator token \"{name}\"; shown once, stored only as a hash");
        }
        OperatorTokenCmd::List => {
            println!("id\tcreated\tstate\tname");
            for t in op.operator_tokens()? {
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
            token_disabled(op, &id, true)?;
            println!("operator token {id} disabled");
        }
        OperatorTokenCmd::Enable { id } => {
            token_disabled(op, &id, false)?;
            println!("operator token {id} enabled");
        }
    }
    Ok(())
}

fn token_disabled(op: &Operator, id: &str, disabled: bool) -> Result<()> {
    match op.set_operator_token_disabled(id, disabled) {
        Err(meterbook_app::AppError::NotFound(_)) => {
            anyhow::bail!("no operator token {id} (see `operator-token list`)")
        }
        r => Ok(r?),
    }
}
