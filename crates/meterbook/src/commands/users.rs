//! user create: portal users and their roles, from the operator's CLI.

use super::enrollment_number;
use crate::cli::UserCmd;
use anyhow::{bail, Context, Result};
use meterbook_app::Operator;
use meterbook_core::access::Scope;
use meterbook_core::users::Role;
use meterbook_core::EnrollmentNumber;
use meterbook_server::portal::{password, session};
use std::io::Read;

/// The role a CLI role name and department/account stand for.
pub fn role(
    op: &Operator,
    n: &EnrollmentNumber,
    name: &str,
    department: Option<&str>,
    account: Option<&str>,
) -> Result<Role> {
    let h = op.enrollment(n)?.hierarchy()?;
    let dept = || -> Result<i64> {
        let d = department.context("--department is needed for a department role")?;
        Ok(h.department_by_name(d)
            .with_context(|| format!("no department {d:?}"))?
            .id)
    };
    let (scope, read_only) = match name {
        "enterprise-admin" => (Scope::Enrollment, false),
        "enterprise-reader" => (Scope::Enrollment, true),
        "department-admin" => (Scope::Department(dept()?), false),
        "department-reader" => (Scope::Department(dept()?), true),
        "account-owner" => {
            let a = account.context("--account is needed for an account owner")?;
            (Scope::Account(h.account_by_name(a).with_context(|| format!("no account {a:?}"))?.id), false)
        }
        other => bail!(
            "unknown role {other:?}: use enterprise-admin, enterprise-reader, department-admin, department-reader or account-owner"
        ),
    };
    Ok(Role {
        enrollment: n.clone(),
        scope,
        read_only,
    })
}

/// Creates the user if new (with `password`, or none) and grants `role`.
/// Returns the user id and whether it was created.
pub fn ensure_user(
    op: &Operator,
    email: &str,
    name: &str,
    password: Option<&str>,
    role: &Role,
) -> Result<(i64, bool)> {
    let hash = password
        .map(password::hash)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let (user, created) = op.ensure_user(email, name, hash.as_deref(), role)?;
    Ok((user.id, created))
}

pub fn run(op: &Operator, c: UserCmd) -> Result<()> {
    let UserCmd::Create {
        email,
        name,
        enrollment,
        role: r,
        department,
        account,
        password_stdin,
    } = c;
    let n = enrollment_number(&enrollment)?;
    let role = role(op, &n, &r, department.as_deref(), account.as_deref())?;
    let pw = if password_stdin {
        let mut p = String::new();
        std::io::stdin().read_to_string(&mut p)?;
        Some(p.trim_end_matches(['\r', '\n']).to_string())
    } else {
        None
    };
    let (id, created) = ensure_user(op, &email, &name, pw.as_deref(), &role)?;
    eprintln!(
        "{} {email}: {} in enrollment {n}",
        if created { "created" } else { "updated" },
        role.title()
    );
    let token = session::random_token();
    if pw.is_none() && op.invite(id, &session::token_hash(&token))? {
        println!("/portal/set-password?token={token}");
        eprintln!("(a one-time link, valid 7 days: prefix it with the server's address)");
    }
    Ok(())
}
