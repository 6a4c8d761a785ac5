//! An enrollment's own rows: the enrollment and its commitment entries.

use crate::tx::pg;
use meterbook_core::enrollment::{ChargeVisibility, Enrollment};
use meterbook_core::statement::CommitmentEntry;
use meterbook_core::store::{EntryKind, StoreError, StoreResult};
use meterbook_core::{Currency, Day, EnrollmentNumber, Money};
use postgres::types::Type;
use postgres::{GenericClient, Row};

pub(super) const ENROLLMENT_COLUMNS: &str = "id, number, name, currency, start_day, end_day, \
     dept_admins_view_charges, account_owners_view_charges, watermark, data_version";

pub(super) fn enrollment_from_row(r: &Row) -> StoreResult<Enrollment> {
    let number: String = r.get(1);
    let currency: String = r.get(3);
    let bad = |what: String| StoreError::Backend(format!("corrupt enrollment row: {what}"));
    Ok(Enrollment {
        id: r.get(0),
        number: EnrollmentNumber::parse(&number).map_err(bad)?,
        name: r.get(2),
        currency: Currency::parse(&currency).map_err(bad)?,
        start: Day::from_raw(r.get(4)),
        end: Day::from_raw(r.get(5)),
        visibility: ChargeVisibility {
            department_admins_view_charges: r.get(6),
            account_owners_view_charges: r.get(7),
        },
        watermark: r.get::<_, Option<i32>>(8).map(Day::from_raw),
        data_version: r.get(9),
    })
}

/// The enrollment numbered `n`, or NotFound.
pub(super) fn enrollment_by_number(
    c: &mut impl GenericClient,
    n: &EnrollmentNumber,
) -> StoreResult<Enrollment> {
    let row = c
        .query_typed_opt(
            &format!("SELECT {ENROLLMENT_COLUMNS} FROM enrollment WHERE number = $1"),
            &[(&n.as_str(), Type::TEXT)],
        )
        .map_err(pg)?
        .ok_or_else(|| StoreError::NotFound(format!("no enrollment {n}")))?;
    enrollment_from_row(&row)
}

/// Purchases and adjustments of an enrollment, by date.
pub(super) fn entries_in(
    c: &mut impl GenericClient,
    eid: i64,
) -> StoreResult<Vec<(EntryKind, CommitmentEntry)>> {
    let rows = c
        .query_typed(
            "SELECT kind, day, amount, description FROM commitment_entry \
             WHERE enrollment_id = $1 ORDER BY day, id",
            &[(&eid, Type::INT8)],
        )
        .map_err(pg)?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                if r.get::<_, i16>(0) == 0 {
                    EntryKind::Purchase
                } else {
                    EntryKind::Adjustment
                },
                CommitmentEntry {
                    date: Day::from_raw(r.get(1)),
                    amount: Money(r.get(2)),
                    description: r.get(3),
                },
            )
        })
        .collect())
}
