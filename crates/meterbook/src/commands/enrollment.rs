//! enrollment, hierarchy, subscription and prices commands.

use super::{day, enrollment_number, period};
use crate::cli::{EnrollmentCmd, HierarchyCmd, PricesCmd, SubscriptionCmd};
use anyhow::{bail, Context, Result};
use meterbook_core::enrollment::{ChargeVisibility, NewEnrollment};
use meterbook_core::prices::build_price_sheet;
use meterbook_core::store::MetadataStore;
use meterbook_core::Currency;
use meterbook_sqlite::SqliteStore;
use std::fs::File;
use std::io::Write;
use std::path::Path;

fn open_input(path: &Path) -> Result<File> {
    File::open(path).with_context(|| format!("cannot read {}", path.display()))
}

pub fn enrollment(s: &SqliteStore, c: EnrollmentCmd) -> Result<()> {
    match c {
        EnrollmentCmd::Create {
            number,
            name,
            currency,
            start,
            end,
        } => {
            let e = s.create_enrollment(&NewEnrollment {
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
            let cur = s.enrollment(&n)?.visibility;
            let v = ChargeVisibility {
                department_admins_view_charges: department_admins_view_charges
                    .unwrap_or(cur.department_admins_view_charges),
                account_owners_view_charges: account_owners_view_charges
                    .unwrap_or(cur.account_owners_view_charges),
            };
            s.set_visibility(&n, v)?;
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
            for e in s.enrollments()? {
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

pub fn hierarchy(s: &SqliteStore, c: HierarchyCmd) -> Result<()> {
    let HierarchyCmd::Import { enrollment, file } = c;
    let n = enrollment_number(&enrollment)?;
    let name = file.display().to_string();
    let rows = meterbook_io::input::hierarchy::read(&name, open_input(&file)?)?;
    let sum = s
        .upsert_hierarchy(&n, &rows)
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

pub fn subscription(s: &SqliteStore, c: SubscriptionCmd) -> Result<()> {
    let SubscriptionCmd::Move {
        enrollment,
        subscription,
        account,
        effective,
    } = c;
    let n = enrollment_number(&enrollment)?;
    let eff = day(&effective, "--effective")?;
    s.move_subscription(&n, &subscription, &account, eff)?;
    println!("subscription {subscription} belongs to account {account} from {eff}");
    Ok(())
}

pub fn prices(s: &SqliteStore, c: PricesCmd) -> Result<()> {
    let PricesCmd::Import {
        enrollment,
        period: p,
        file,
    } = c;
    let n = enrollment_number(&enrollment)?;
    let p = period(&p)?;
    let name = file.display().to_string();
    let rows = meterbook_io::input::prices::read(&name, open_input(&file)?)?;
    let sheet =
        build_price_sheet(&rows).map_err(|(line, msg)| anyhow::anyhow!("{name}:{line}: {msg}"))?;
    // The store refuses prices that take the period's usage out of range; asking
    // first names the line of the meter that does.
    if let Err((meter, e)) = meterbook_core::ledger::check_prices(s, &n, p, &sheet)? {
        match rows.iter().find(|r| r.meter_id == meter) {
            Some(r) => bail!("{name}:{}: meter {meter}: {e}", r.line),
            None => bail!("{name}: {e}"),
        }
    }
    let count = s.import_prices(&n, p, &sheet)?;
    println!(
        "{name}: price sheet {p}: {count} meters, {} rows",
        rows.len()
    );
    Ok(())
}
