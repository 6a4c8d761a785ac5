//! enrollment, hierarchy, subscription and prices commands.

use super::{day, enrollment_number, period};
use crate::cli::{EnrollmentCmd, HierarchyCmd, PricesCmd, SubscriptionCmd};
use anyhow::{Context, Result};
use meterbook_app::Operator;
use meterbook_core::enrollment::{ChargeVisibility, NewEnrollment};
use meterbook_core::Currency;
use std::fs::File;
use std::io::Write;
use std::path::Path;

fn open_input(path: &Path) -> Result<File> {
    File::open(path).with_context(|| format!("cannot read {}", path.display()))
}

pub fn enrollment(op: &Operator, c: EnrollmentCmd) -> Result<()> {
    match c {
        EnrollmentCmd::Create {
            number,
            name,
            currency,
            start,
            end,
        } => {
            let e = op.create_enrollment(&NewEnrollment {
                number: enrollment_number(&number)?,
                name,
                currency: Currency::parse(&currency).map_err(anyhow::Error::msg)?,
                start: day(&start, "--start")?,
                end: day(&end, "--end")?,
                visibility: ChargeVisibility::default(),
            })?;
            println!(
                "created enrollment {} ({}), {} {} to {}",
                e.number, e.name, e.currency, e.start, e.end
            );
        }
        EnrollmentCmd::Set {
            number,
            department_admins_view_charges,
            account_owners_view_charges,
        } => {
            let n = enrollment_number(&number)?;
            let v = op.set_visibility(
                &n,
                department_admins_view_charges,
                account_owners_view_charges,
            )?;
            println!(
                "enrollment {n}: DepartmentAdminsViewCharges={} AccountOwnersViewCharges={}",
                v.department_admins_view_charges, v.account_owners_view_charges
            );
        }
        EnrollmentCmd::List => {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "number\tname\tcurrency\tstart\tend\tusage complete through"
            )?;
            for e in op.enrollments()? {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    e.number,
                    e.name,
                    e.currency,
                    e.start,
                    e.end,
                    e.watermark.map_or("-".to_string(), |d| d.to_string())
                )?;
            }
        }
    }
    Ok(())
}

pub fn hierarchy(op: &Operator, c: HierarchyCmd) -> Result<()> {
    let HierarchyCmd::Import { enrollment, file } = c;
    let n = enrollment_number(&enrollment)?;
    let name = file.display().to_string();
    let rows = meterbook_io::input::hierarchy::read(&name, open_input(&file)?)?;
    let sum = op
        .import_hierarchy(&n, &rows)
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    println!(
        "{name}: {} rows; {} departments, {} accounts, {} subscriptions created, {} updated",
        rows.len(),
        sum.departments,
        sum.accounts,
        sum.subscriptions_created,
        sum.subscriptions_updated
    );
    Ok(())
}

pub fn subscription(op: &Operator, c: SubscriptionCmd) -> Result<()> {
    let SubscriptionCmd::Move {
        enrollment,
        subscription,
        account,
        effective,
    } = c;
    let n = enrollment_number(&enrollment)?;
    let eff = day(&effective, "--effective")?;
    op.move_subscription(&n, &subscription, &account, eff)?;
    println!("subscription {subscription} belongs to account {account} from {eff}");
    Ok(())
}

pub fn prices(op: &Operator, c: PricesCmd) -> Result<()> {
    let PricesCmd::Import {
        enrollment,
        period: p,
        file,
    } = c;
    let n = enrollment_number(&enrollment)?;
    let p = period(&p)?;
    let name = file.display().to_string();
    let rows = meterbook_io::input::prices::read(&name, open_input(&file)?)?;
    let count = op.import_prices(&n, p, &name, &rows)?;
    println!(
        "{name}: price sheet {p}: {count} meters, {} rows",
        rows.len()
    );
    Ok(())
}
