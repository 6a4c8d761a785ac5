//! An enrollment's rows: the enrollment itself, its term, data version,
//! closed periods and commitment entries.

use crate::backend;
use meterbook_core::enrollment::{ChargeVisibility, Enrollment};
use meterbook_core::statement::CommitmentEntry;
use meterbook_core::store::{EntryKind, StoreResult};
use meterbook_core::{Currency, Day, EnrollmentNumber, Money, Period};
use rusqlite::{Connection, Row};

/// Purchases and adjustments of an enrollment, by date.
pub(super) fn entries_in(
    conn: &Connection,
    eid: i64,
) -> StoreResult<Vec<(EntryKind, CommitmentEntry)>> {
    let mut st = conn
        .prepare(
            "SELECT kind, day, amount, description FROM commitment_entry WHERE enrollment_id = ?1 ORDER BY day, id",
        )
        .map_err(backend)?;
    let rows = st
        .query_map([eid], |r| {
            Ok((
                if r.get::<_, i64>(0)? == 0 {
                    EntryKind::Purchase
                } else {
                    EntryKind::Adjustment
                },
                CommitmentEntry {
                    date: Day::from_raw(r.get(1)?),
                    amount: Money(r.get(2)?),
                    description: r.get(3)?,
                },
            ))
        })
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    Ok(rows)
}

pub(super) fn enrollment_from_row(r: &Row<'_>) -> rusqlite::Result<Enrollment> {
    let number: String = r.get(1)?;
    let currency: String = r.get(3)?;
    let bad = |what: String| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, what.into())
    };
    Ok(Enrollment {
        id: r.get(0)?,
        number: EnrollmentNumber::parse(&number).map_err(bad)?,
        name: r.get(2)?,
        currency: Currency::parse(&currency).map_err(bad)?,
        start: Day::from_raw(r.get(4)?),
        end: Day::from_raw(r.get(5)?),
        visibility: ChargeVisibility {
            department_admins_view_charges: r.get(6)?,
            account_owners_view_charges: r.get(7)?,
        },
        watermark: r.get::<_, Option<i32>>(8)?.map(Day::from_raw),
        data_version: r.get(9)?,
    })
}

pub(super) const ENROLLMENT_COLUMNS: &str = "id, number, name, currency, start_day, end_day, \
     dept_admins_view_charges, account_owners_view_charges, watermark, data_version";

/// The enrollment's term as raw day numbers (first, last).
pub(crate) fn term(conn: &Connection, eid: i64) -> StoreResult<(i32, i32)> {
    conn.query_row(
        "SELECT start_day, end_day FROM enrollment WHERE id = ?1",
        [eid],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .map_err(backend)
}

/// Marks the enrollment's data as changed (see `Enrollment::data_version`).
pub(crate) fn bump_version(conn: &Connection, eid: i64) -> StoreResult<()> {
    conn.execute(
        "UPDATE enrollment SET data_version = data_version + 1 WHERE id = ?1",
        [eid],
    )
    .map_err(backend)?;
    Ok(())
}

pub(crate) fn last_closed(conn: &Connection, eid: i64) -> StoreResult<Option<Period>> {
    let p: Option<u32> = conn
        .query_row(
            "SELECT MAX(period) FROM closed_period WHERE enrollment_id = ?1",
            [eid],
            |r| r.get(0),
        )
        .map_err(backend)?;
    Ok(p.and_then(Period::from_id))
}
