//! `meterbook demo`: the enrollment seeded, its users and keys, and what to
//! try next.

use crate::cli::DemoArgs;
use crate::commands::ingest_file;
use crate::settings::Settings;
use anyhow::Result;
use meterbook_app::{AppError, Operator};
use meterbook_core::enrollment::{ChargeVisibility, NewEnrollment};
use meterbook_core::statement::CommitmentEntry;
use meterbook_core::store::EntryKind;
use meterbook_core::{Currency, Day, EnrollmentNumber, Money};
use std::io::{BufWriter, Write};

use super::generate::*;
use super::sample::*;

pub fn run(settings: &Settings, a: &DemoArgs) -> Result<()> {
    let op = crate::commands::operator(settings)?;
    let n = crate::commands::enrollment_number(&a.enrollment)?;
    match op.enrollment(&n) {
        Ok(_) => {
            println!(
                "Demo enrollment {n} is already in {}; not seeding it again.",
                settings.store.describe()
            );
        }
        Err(AppError::NotFound(_)) => {
            seed(&op, &n, a.rows)?;
            demo_exports(settings, &n)?;
        }
        Err(e) => return Err(e.into()),
    }
    print_next_steps(settings, &n);
    let users = demo_users(&op, &n)?;
    // An enterprise administrator's key for the API (regenerated on every run).
    let (key, _, _) = crate::commands::create_key(
        &op,
        &n,
        meterbook_core::access::Scope::Enrollment,
        meterbook_core::access::Slot::Primary,
        183,
        false,
    )?;
    drop(op);
    if a.no_serve {
        println!("\nEnterprise-admin API key (primary): {key}");
        println!("{}", second_key_hint(settings, &n));
        print_users(&users);
        return Ok(());
    }
    let n2 = n.clone();
    let hint = second_key_hint(settings, &n);
    let banner = move |base: &str| {
        let last = Day::today().period().prev();
        println!();
        println!("Reporting API at {base}  (Ctrl-C to stop)");
        println!("Enterprise-admin API key (primary): {key}");
        println!("{hint}");
        println!(
            "  curl -H 'Authorization: bearer {key}' {base}/v3/enrollments/{n2}/billingPeriods"
        );
        println!("  curl -H 'Authorization: bearer {key}' {base}/v3/enrollments/{n2}/billingPeriods/{last}/balancesummary");
        println!("  curl --compressed -H 'Authorization: bearer {key}' '{base}/v3/enrollments/{n2}/usagedetails/download?billingPeriod={last}' -o {}/usage-{last}.csv", std::env::temp_dir().display());
        println!("Advanced report: request, poll reportUrl until status 6 (ReadyToDownload), then fetch blobPath (no key needed):");
        println!("  curl -X POST -H 'Authorization: bearer {key}' -H 'Content-Type: application/json' -d '{{\"startDate\":\"{}\",\"endDate\":\"{}\",\"format\":\"focus-csv\"}}' {base}/v3/enrollments/{n2}/reports", last.first_day(), last.last_day());
        println!("API documentation: {base}/docs");
        println!();
        println!("Portal: {base}/portal");
        print_users(&users);
    };
    crate::commands::serve(settings, &a.serve, Some(&banner))
}

/// Two scheduled exports, a daily one and a monthly one, each run once into
/// the export root, so the demo shows exports that have run.
fn demo_exports(settings: &Settings, n: &EnrollmentNumber) -> Result<()> {
    use meterbook_app::exports::NewExport;
    use meterbook_core::jobs::ExportFormat;
    let app = crate::commands::exports_app(settings)?;
    let access = app.local_operator().enrollment(n)?;
    for (name, folder, schedule, format) in [
        ("Daily usage", "daily", "daily", ExportFormat::CsvGzip),
        (
            "Monthly FOCUS",
            "monthly",
            "monthly",
            ExportFormat::FocusParquet,
        ),
    ] {
        access.create_export(NewExport {
            name: name.into(),
            folder: folder.into(),
            schedule: schedule.into(),
            span: None,
            format,
        })?;
    }
    let runner = app
        .export_runner()
        .ok_or_else(|| anyhow::anyhow!("no export root"))?;
    let ran = runner.run_due(Some(n))?;
    let ok = ran
        .iter()
        .filter(|r| r.run.status == meterbook_core::exports::RunStatus::Succeeded)
        .count();
    println!(
        "Scheduled exports: {ok} of {} runs written under {}/{n}/ (each folder has a manifest.json).",
        ran.len(),
        settings.export_root
    );
    Ok(())
}

fn seed(op: &Operator, n: &EnrollmentNumber, rows: u64) -> Result<()> {
    let today = Day::today();
    let this = today.period();
    // A year of usage: the term began twelve months ago.
    let mut first = this;
    for _ in 0..12 {
        first = first.prev();
    }
    let start = first.first_day();
    let mut end_period = first;
    for _ in 0..36 {
        end_period = end_period.next();
    }
    let end = end_period.first_day().add_days(-1);
    let last_usage = today.add_days(-1);
    op.create_enrollment(&NewEnrollment {
        number: n.clone(),
        name: "Northwind Traders".into(),
        currency: Currency::parse("USD").map_err(anyhow::Error::msg)?,
        start,
        end,
        visibility: ChargeVisibility {
            department_admins_view_charges: true,
            account_owners_view_charges: false,
        },
    })?;
    let dir = tempfile::tempdir()?;
    println!("Generating about {rows} usage rows from {start} to {last_usage} ...");
    let g = generate(dir.path(), rows, start, last_usage, 8608480)?;
    load(op, n, &g)?;
    let t = std::time::Instant::now();
    let usage = g.usage.display().to_string();
    let sum = ingest_file(op, n, &usage, None, false, None)?;
    println!(
        "Ingested {} rows in {:.1} s ({:.0} rows/s).",
        sum.stored,
        t.elapsed().as_secs_f64(),
        sum.stored as f64 / t.elapsed().as_secs_f64()
    );
    // A year of usage with a story: the first purchase lasts until the sixth
    // month, which runs into overage; a top-up the month after keeps a healthy
    // balance through today (about a third of it left). A credit and a debit
    // on the way.
    let mut cents = Vec::new();
    let access = op.enrollment(n)?;
    let enterprise = access.enterprise()?;
    for p in first.through(this) {
        let c = enterprise.charges(p)?.commitment;
        cents.push((p, c.round_to_minor(2)?.0));
    }
    let (credit, debit) = (250_000, -40_000);
    let overage_at = 5.min(cents.len() - 1);
    let before: i64 = cents[..overage_at].iter().map(|c| c.1).sum();
    // Covers the months before and 40% of the sixth, in whole thousands.
    let commit =
        ((before - credit - debit + cents[overage_at].1 * 4 / 10) / 100_000 * 100_000).max(100_000);
    let after: i64 = cents[overage_at + 1..].iter().map(|c| c.1).sum();
    let top_up = (after * 3 / 2 / 1_000_000 + 1) * 1_000_000;
    let top_up_period = cents.get(overage_at + 1).map(|c| c.0);
    let entry = |date: Day, cents: i64, d: &str| CommitmentEntry {
        date,
        amount: Money(cents),
        description: d.into(),
    };
    op.add_entry(
        n,
        EntryKind::Purchase,
        &entry(start, commit, "Monetary commitment, year 1"),
    )?;
    if let Some(p) = top_up_period {
        op.add_entry(
            n,
            EntryKind::Purchase,
            &entry(p.first_day(), top_up, "Commitment top-up"),
        )?;
    }
    op.add_entry(
        n,
        EntryKind::Adjustment,
        &entry(
            first.next().first_day().add_days(14),
            credit,
            "Service credit: regional outage",
        ),
    )?;
    op.add_entry(
        n,
        EntryKind::Adjustment,
        &entry(
            first.next().next().next().first_day().add_days(2),
            debit,
            "Correction of a prior credit",
        ),
    )?;
    // Close every period but the last three, then feed late usage for a closed month.
    let close_through = this.prev().prev().prev();
    for p in first.through(close_through) {
        op.close_period(n, p)?;
    }
    let late = g.usage.with_file_name("late.csv");
    let mut w = BufWriter::new(std::fs::File::create(&late)?);
    writeln!(w, "RecordId,SubscriptionGuid,Date,MeterId,ConsumedQuantity,ResourceGroup,ResourceLocation,ConsumedService,Tags")?;
    let late_day = close_through.first_day().add_days(9);
    for i in 0..20 {
        writeln!(w, "late-{i:03},{},{late_day},vm-e4s,{}.5,rg-app,westeurope,Compute,\"{{\"\"env\"\":\"\"prod\"\"}}\"", g.subscriptions[i % g.subscriptions.len()].0, 2 + i % 5)?;
    }
    // A meter that had no usage in the closed month is priced at C(q)/q of that month's sheet.
    writeln!(
        w,
        "late-gpu,{},{late_day},vm-nc24,3,rg-ml,westeurope,Compute,",
        g.subscriptions[2].0
    )?;
    w.flush()?;
    drop(w);
    ingest_file(op, n, &late.display().to_string(), None, false, None)?;
    op.set_watermark(n, last_usage)?;
    // The portal users first: the budgets' alerts are e-mailed to them too.
    demo_users(op, n)?;
    let finance = super::finance::seed(op, n)?;
    println!(
        "Created enrollment {n} (Northwind Traders, USD, {start} to {end}): {} departments, {} accounts, {} subscriptions, {} meters,",
        4,
        ORG.len(),
        g.subscriptions.len(),
        METERS.len()
    );
    println!(
        "commitment {} USD, a top-up of {} USD{}, periods {first} to {close_through} closed, 21 late corrections booked in {}.",
        Money(commit).format(2),
        Money(top_up).format(2),
        cents
            .get(overage_at)
            .map_or(String::new(), |c| format!(" after overage in {}", c.0)),
        close_through.next()
    );
    for line in finance {
        println!("{line}");
    }
    Ok(())
}

/// (e-mail, CLI role, title, department, account).
type DemoUser = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

/// The demo's portal sign-ins, one per role.
const DEMO_USERS: &[DemoUser] = &[
    (
        "admin@northwind.example",
        "enterprise-admin",
        "Enterprise administrator",
        None,
        None,
    ),
    (
        "auditor@northwind.example",
        "enterprise-reader",
        "Enterprise administrator (read-only)",
        None,
        None,
    ),
    (
        "dana@northwind.example",
        "department-admin",
        "Department administrator of Research",
        Some("Research"),
        None,
    ),
    (
        "erik@northwind.example",
        "account-owner",
        "Account owner of ops-web",
        None,
        Some("ops-web"),
    ),
];

/// The password of every demo user (demo data only; printed at start).
pub const DEMO_PASSWORD: &str = "meterbook-demo";

fn demo_users(op: &Operator, n: &EnrollmentNumber) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (email, role, title, dept, acct) in DEMO_USERS {
        let r = crate::commands::users::role(op, n, role, *dept, *acct)?;
        crate::commands::users::ensure_user(op, email, "", Some(DEMO_PASSWORD), &r)?;
        out.push((email.to_string(), title.to_string()));
    }
    Ok(out)
}

/// `keys create` without `--slot` would replace the demo's key: say how to add one.
fn second_key_hint(settings: &Settings, n: &EnrollmentNumber) -> String {
    format!(
        "  (made again at every demo start; a key of your own beside it: \
         meterbook {}keys create --enrollment {n} --slot secondary)",
        settings.store.cli_args()
    )
}

fn print_users(users: &[(String, String)]) {
    println!("Portal sign-ins (password {DEMO_PASSWORD} for each):");
    for (email, title) in users {
        println!("  {email:<28} {title}");
    }
}

/// The running binary's directory, when no `meterbook` on the PATH is this binary.
fn not_on_path() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?.canonicalize().ok()?;
    let dir = exe.parent()?.to_path_buf();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .filter_map(|d| d.join("meterbook").canonicalize().ok())
        .any(|p| p == exe);
    (!found).then_some(dir)
}

fn print_next_steps(settings: &Settings, n: &EnrollmentNumber) {
    let db = settings.store.cli_args();
    let this = Day::today().period();
    // Suggested files go to the temp directory, not the working one (often a checkout).
    let out = std::env::temp_dir();
    let out = out.display();
    println!();
    if let Some(dir) = not_on_path() {
        // `cargo run -- demo` works without it; the commands below do not.
        println!("`meterbook` is not on your PATH; for the commands below, first:");
        println!("  export PATH=\"{}:$PATH\"", dir.display());
    }
    if let crate::settings::StoreConfig::Cluster { .. } = settings.store {
        println!(
            "The commands below find the cluster through MB_STORE and MB_USAGE_STORE \
             (after `scripts/cluster.sh demo`: source target/cluster-demo/env)."
        );
    }
    println!("Try:");
    println!("  meterbook {db}period list --enrollment {n}");
    println!(
        "  meterbook {db}report balance --enrollment {n} --period {} --format json",
        this.prev()
    );
    println!(
        "  meterbook {db}report usage --enrollment {n} --period {} -o {out}/usage-{}.csv",
        this.prev(),
        this.prev()
    );
    println!(
        "  meterbook {db}report usage --enrollment {n} --from {} --to {} --department Research",
        this.prev().first_day(),
        this.prev().first_day().add_days(6)
    );
    println!("  meterbook {db}report prices --enrollment {n} --period {this}");
    println!("  meterbook {db}report marketplace --enrollment {n} --period {this} --format json");
    println!("  meterbook {db}forecast --enrollment {n}");
    println!("  meterbook {db}budgets list --enrollment {n}");
    println!("Advanced reports (prepared in the background, kept 30 days):");
    println!(
        "  id=$(meterbook {db}report request --enrollment {n} --from {} --to {} --department Research --format parquet)",
        this.prev().prev().first_day(),
        this.prev().last_day()
    );
    println!("  meterbook {db}report status $id && meterbook {db}report fetch $id -o {out}/research.parquet");
}
