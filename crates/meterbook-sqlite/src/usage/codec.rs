//! Byte encodings of the usage layout: varints, RecordIds, fact blocks and
//! a day's sums.
//!
//! A fact block holds the rows of one (enrollment, day) written by one flush,
//! sorted by RecordId text, stored column by column:
//!
//! ```text
//! u8 version (1) · varint rows · u8 flags (1: every id is a UUID, 2: corrections present)
//! ids:        16 bytes each when flag 1, else per row: varint 0 + 16 bytes (UUID)
//!             or varint len+1 + the id's UTF-8
//! subscription, meter, quantity, profile: one zigzag varint per row, column by column
//! corrections (flag 2): per row varint booked period id (0: none), then a zigzag i128 rate
//! ```
//!
//! A RecordId is stored as 16 bytes only when it is a UUID in canonical
//! lowercase form, the form it is written back in; any other id is kept as
//! its text, so every report gives back the id exactly as sent. Lowercase hex
//! sorts like its bytes, so comparing two UUIDs compares their 16 bytes.

use meterbook_core::store::{StoreError, StoreResult};
use std::cmp::Ordering;

fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("corrupt usage {what} in database"))
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u128) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn put_i64(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64 as u128);
}

pub(super) fn put_i128(out: &mut Vec<u8>, v: i128) {
    put_varint(out, ((v << 1) ^ (v >> 127)) as u128);
}

/// Reads values back from an encoded buffer; every read checks its bounds.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, at: 0 }
    }
    pub(super) fn done(&self) -> bool {
        self.at == self.buf.len()
    }
    pub(super) fn varint(&mut self) -> StoreResult<u128> {
        let mut v: u128 = 0;
        let mut shift = 0;
        loop {
            let b = *self.buf.get(self.at).ok_or_else(|| corrupt("varint"))?;
            self.at += 1;
            if shift >= 128 {
                return Err(corrupt("varint"));
            }
            v |= ((b & 0x7f) as u128) << shift;
            if b < 0x80 {
                return Ok(v);
            }
            shift += 7;
        }
    }
    pub(super) fn u64(&mut self) -> StoreResult<u64> {
        u64::try_from(self.varint()?).map_err(|_| corrupt("varint"))
    }
    pub(super) fn i64(&mut self) -> StoreResult<i64> {
        let u = self.u64()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
    pub(super) fn i128(&mut self) -> StoreResult<i128> {
        let u = self.varint()?;
        Ok(((u >> 1) as i128) ^ -((u & 1) as i128))
    }
    pub(super) fn bytes(&mut self, n: usize) -> StoreResult<&'a [u8]> {
        let end = self.at.checked_add(n).ok_or_else(|| corrupt("block"))?;
        let s = self.buf.get(self.at..end).ok_or_else(|| corrupt("block"))?;
        self.at = end;
        Ok(s)
    }
    pub(super) fn u8(&mut self) -> StoreResult<u8> {
        Ok(self.bytes(1)?[0])
    }
    pub(super) fn pos(&self) -> usize {
        self.at
    }
}

/// A RecordId as stored: 16 bytes for a canonical lowercase UUID, else text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum RecordKey<T> {
    Uuid([u8; 16]),
    Text(T),
}

pub(super) type OwnedKey = RecordKey<Box<str>>;
pub(super) type KeyRef<'a> = RecordKey<&'a str>;

const HYPHENS: [usize; 4] = [8, 13, 18, 23];
const HEX: &[u8; 16] = b"0123456789abcdef";

/// The 16 bytes of `s` if it is a UUID in canonical lowercase form.
pub(super) fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 36 || HYPHENS.iter().any(|&i| b[i] != b'-') {
        return None;
    }
    // The start of each byte's two hex digits, hyphens skipped.
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    let mut out = [0u8; 16];
    let mut bad = 0u8;
    for (o, &i) in out.iter_mut().zip(AT.iter()) {
        let (hi, lo) = (NIBBLE[b[i] as usize], NIBBLE[b[i + 1] as usize]);
        bad |= (hi | lo) & 0x10;
        *o = hi << 4 | (lo & 0x0f);
    }
    (bad == 0).then_some(out)
}

/// A lowercase hex digit's value; 0x10 marks any other byte.
const NIBBLE: [u8; 256] = {
    let mut t = [0x10u8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Writes the canonical text of a UUID into `out`.
pub(super) fn format_uuid<'b>(u: &[u8; 16], out: &'b mut [u8; 36]) -> &'b str {
    let mut at = 0;
    for (i, byte) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[at] = b'-';
            at += 1;
        }
        out[at] = HEX[(byte >> 4) as usize];
        out[at + 1] = HEX[(byte & 15) as usize];
        at += 2;
    }
    std::str::from_utf8(out).expect("hex and hyphens are ASCII")
}

impl<'a> KeyRef<'a> {
    pub(super) fn of(id: &'a str) -> KeyRef<'a> {
        match parse_uuid(id) {
            Some(u) => RecordKey::Uuid(u),
            None => RecordKey::Text(id),
        }
    }
}

impl OwnedKey {
    pub(super) fn of(id: &str) -> OwnedKey {
        match parse_uuid(id) {
            Some(u) => RecordKey::Uuid(u),
            None => RecordKey::Text(id.into()),
        }
    }
    pub(super) fn as_ref(&self) -> KeyRef<'_> {
        match self {
            RecordKey::Uuid(u) => RecordKey::Uuid(*u),
            RecordKey::Text(t) => RecordKey::Text(t),
        }
    }
}

/// Orders two ids as their texts' bytes order (SQLite's BINARY collation).
pub(super) fn cmp_keys(a: &KeyRef<'_>, b: &KeyRef<'_>) -> Ordering {
    match (a, b) {
        // As big-endian integers: the bytes' order, without a call to memcmp.
        (RecordKey::Uuid(x), RecordKey::Uuid(y)) => {
            u128::from_be_bytes(*x).cmp(&u128::from_be_bytes(*y))
        }
        (RecordKey::Text(x), RecordKey::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
        (RecordKey::Uuid(x), RecordKey::Text(y)) => {
            let mut buf = [0u8; 36];
            format_uuid(x, &mut buf).as_bytes().cmp(y.as_bytes())
        }
        (RecordKey::Text(x), RecordKey::Uuid(y)) => {
            let mut buf = [0u8; 36];
            x.as_bytes().cmp(format_uuid(y, &mut buf).as_bytes())
        }
    }
}

/// A correction's booking: the period it is booked in and its locked rate.
pub(super) type Correction = (u32, i128);

/// One row of a block, as written.
pub(super) struct FactRow {
    pub(super) key: OwnedKey,
    pub(super) subscription: i64,
    pub(super) meter: i64,
    pub(super) quantity: i64,
    pub(super) profile: i64,
    pub(super) correction: Option<Correction>,
}

const VERSION: u8 = 1;
const ALL_UUID: u8 = 1;
const CORRECTIONS: u8 = 2;

/// Encodes rows already sorted by [`cmp_keys`].
pub(super) fn encode_block(rows: &[FactRow], out: &mut Vec<u8>) {
    out.clear();
    out.push(VERSION);
    put_varint(out, rows.len() as u128);
    let all_uuid = rows.iter().all(|r| matches!(r.key, RecordKey::Uuid(_)));
    let corrections = rows.iter().any(|r| r.correction.is_some());
    out.push(if all_uuid { ALL_UUID } else { 0 } | if corrections { CORRECTIONS } else { 0 });
    for r in rows {
        match &r.key {
            RecordKey::Uuid(u) => {
                if !all_uuid {
                    out.push(0);
                }
                out.extend_from_slice(u);
            }
            RecordKey::Text(t) => {
                put_varint(out, t.len() as u128 + 1);
                out.extend_from_slice(t.as_bytes());
            }
        }
    }
    for r in rows {
        put_i64(out, r.subscription);
    }
    for r in rows {
        put_i64(out, r.meter);
    }
    for r in rows {
        put_i64(out, r.quantity);
    }
    for r in rows {
        put_i64(out, r.profile);
    }
    if corrections {
        for r in rows {
            match r.correction {
                None => out.push(0),
                Some((booked, rate)) => {
                    put_varint(out, booked as u128);
                    put_i128(out, rate);
                }
            }
        }
    }
}

/// A decoded block: its columns, ids pointing into its bytes.
pub(super) struct Block {
    data: Vec<u8>,
    /// (start, len) of each id in `data`; len 16 with `uuid` set is a UUID.
    ids: Vec<(u32, u32)>,
    uuid: Vec<bool>,
    pub(super) subscription: Vec<i64>,
    pub(super) meter: Vec<i64>,
    pub(super) quantity: Vec<i64>,
    pub(super) profile: Vec<i64>,
    /// Empty when the block has no corrections.
    pub(super) correction: Vec<Option<Correction>>,
}

impl Block {
    pub(super) fn decode(data: Vec<u8>) -> StoreResult<Block> {
        let mut r = Reader::new(&data);
        if r.u8()? != VERSION {
            return Err(corrupt("block version"));
        }
        let n = usize::try_from(r.u64()?).map_err(|_| corrupt("block"))?;
        // Every row takes at least five bytes: a count beyond that is corrupt.
        if n > data.len() {
            return Err(corrupt("block"));
        }
        let flags = r.u8()?;
        let mut ids = Vec::with_capacity(n);
        let mut uuid = Vec::with_capacity(n);
        for _ in 0..n {
            let len = if flags & ALL_UUID != 0 {
                0
            } else {
                usize::try_from(r.u64()?).map_err(|_| corrupt("block"))?
            };
            let start = r.pos() as u32;
            if len == 0 {
                r.bytes(16)?;
                ids.push((start, 16));
                uuid.push(true);
            } else {
                let text = r.bytes(len - 1)?;
                std::str::from_utf8(text).map_err(|_| corrupt("record id"))?;
                ids.push((start, (len - 1) as u32));
                uuid.push(false);
            }
        }
        let column =
            |r: &mut Reader<'_>| -> StoreResult<Vec<i64>> { (0..n).map(|_| r.i64()).collect() };
        let subscription = column(&mut r)?;
        let meter = column(&mut r)?;
        let quantity = column(&mut r)?;
        let profile = column(&mut r)?;
        let mut correction = Vec::new();
        if flags & CORRECTIONS != 0 {
            correction.reserve(n);
            for _ in 0..n {
                let booked = u32::try_from(r.u64()?).map_err(|_| corrupt("block"))?;
                correction.push(if booked == 0 {
                    None
                } else {
                    Some((booked, r.i128()?))
                });
            }
        }
        if !r.done() {
            return Err(corrupt("block"));
        }
        Ok(Block {
            data,
            ids,
            uuid,
            subscription,
            meter,
            quantity,
            profile,
            correction,
        })
    }

    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(super) fn key(&self, i: usize) -> KeyRef<'_> {
        let (start, len) = self.ids[i];
        let bytes = &self.data[start as usize..(start + len) as usize];
        if self.uuid[i] {
            RecordKey::Uuid(bytes.try_into().expect("16 bytes"))
        } else {
            // Checked in `decode`.
            RecordKey::Text(std::str::from_utf8(bytes).unwrap_or_default())
        }
    }

    pub(super) fn correction(&self, i: usize) -> Option<Correction> {
        self.correction.get(i).copied().flatten()
    }

    /// The row of `key`, by binary search (rows are sorted).
    pub(super) fn find(&self, key: &KeyRef<'_>) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match cmp_keys(&self.key(mid), key) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    pub(super) fn row(&self, i: usize) -> FactRow {
        FactRow {
            key: match self.key(i) {
                RecordKey::Uuid(u) => RecordKey::Uuid(u),
                RecordKey::Text(t) => RecordKey::Text(t.into()),
            },
            subscription: self.subscription[i],
            meter: self.meter[i],
            quantity: self.quantity[i],
            profile: self.profile[i],
            correction: self.correction(i),
        }
    }
}

/// The rows of several blocks of one day in RecordId order: (block, row).
/// Each block is sorted, so this merges them: one comparison per block and
/// row, against sorting all rows (a 10M-row file leaves a day in 4 blocks).
pub(super) fn merged_order(blocks: &[Block]) -> Vec<(u32, u32)> {
    let total: usize = blocks.iter().map(Block::len).sum();
    let mut order = Vec::with_capacity(total);
    if blocks.len() == 1 {
        order.extend((0..blocks[0].len() as u32).map(|i| (0, i)));
        return order;
    }
    let mut next = vec![0usize; blocks.len()];
    for _ in 0..total {
        let mut best: Option<usize> = None;
        for (b, blk) in blocks.iter().enumerate() {
            if next[b] == blk.len() {
                continue;
            }
            best = match best {
                Some(o)
                    if cmp_keys(&blocks[o].key(next[o]), &blk.key(next[b]))
                        != Ordering::Greater =>
                {
                    Some(o)
                }
                _ => Some(b),
            };
        }
        let b = best.expect("rows remain");
        order.push((b as u32, next[b] as u32));
        next[b] += 1;
    }
    order
}

/// One entry of a day's sums (see `usage_day`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct DaySum {
    pub(super) subscription: i64,
    pub(super) meter: i64,
    /// 0 unless a correction: then the period it is booked in, with its rate.
    pub(super) booked: u32,
    pub(super) rate: Option<i128>,
    pub(super) quantity: i64,
    pub(super) rows: i64,
}

impl DaySum {
    /// The order the sums are kept in, the one the old table's key gave
    /// (the rate compared as its decimal text).
    pub(super) fn cmp_key(&self, o: &DaySum) -> Ordering {
        (self.subscription, self.meter, self.booked)
            .cmp(&(o.subscription, o.meter, o.booked))
            .then_with(|| rate_text(self.rate).cmp(&rate_text(o.rate)))
    }
}

fn rate_text(r: Option<i128>) -> String {
    r.map_or(String::new(), |r| r.to_string())
}

pub(super) fn encode_day(sums: &[DaySum], out: &mut Vec<u8>) {
    out.clear();
    out.push(VERSION);
    put_varint(out, sums.len() as u128);
    for s in sums {
        put_i64(out, s.subscription);
        put_i64(out, s.meter);
        put_varint(out, s.booked as u128);
        if s.booked != 0 {
            put_i128(out, s.rate.unwrap_or(0));
        }
        put_i64(out, s.quantity);
        put_i64(out, s.rows);
    }
}

pub(super) fn decode_day(data: &[u8]) -> StoreResult<Vec<DaySum>> {
    let mut r = Reader::new(data);
    if r.u8()? != VERSION {
        return Err(corrupt("day sums version"));
    }
    let n = usize::try_from(r.u64()?).map_err(|_| corrupt("day sums"))?;
    if n > data.len() {
        return Err(corrupt("day sums"));
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let subscription = r.i64()?;
        let meter = r.i64()?;
        let booked = u32::try_from(r.u64()?).map_err(|_| corrupt("day sums"))?;
        let rate = if booked != 0 { Some(r.i128()?) } else { None };
        out.push(DaySum {
            subscription,
            meter,
            booked,
            rate,
            quantity: r.i64()?,
            rows: r.i64()?,
        });
    }
    if !r.done() {
        return Err(corrupt("day sums"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_round_trip_and_only_canonical_lowercase_is_binary() {
        let id = "0f8fad5b-d9cb-469f-a165-70867728950e";
        let u = parse_uuid(id).unwrap();
        let mut buf = [0u8; 36];
        assert_eq!(format_uuid(&u, &mut buf), id);
        assert!(parse_uuid(&id.to_uppercase()).is_none());
        assert!(parse_uuid("0f8fad5bd9cb469fa16570867728950e").is_none());
        assert!(parse_uuid("0f8fad5b-d9cb-469f-a165-70867728950g").is_none());
        assert!(parse_uuid("0f8fad5b-d9cb-469f-a165_70867728950e").is_none());
        // Every position refuses a byte that is not a lowercase hex digit.
        for i in (0..36).filter(|i| !HYPHENS.contains(i)) {
            for c in [b'g', b'G', b'A', b'/', b':', b'`', b'-', 0xc3] {
                let mut b = id.as_bytes().to_vec();
                b[i] = c;
                let s = String::from_utf8_lossy(&b);
                assert!(parse_uuid(&s).is_none(), "{s}");
            }
        }
    }

    #[test]
    fn ids_order_as_their_text_whatever_the_encoding() {
        let ids = [
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "0F8FAD5B-D9CB-469F-A165-70867728950E",
            "0f8fad5b-d9cb-469f-a165-70867728950",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
            "00000000-0000-0000-0000-000000000000",
            "u-20250701-000001",
            "é",
            "",
            "0f8fad5b-d9cb-469f-a165-70867728950e0",
        ];
        for a in ids {
            for b in ids {
                assert_eq!(
                    cmp_keys(&KeyRef::of(a), &KeyRef::of(b)),
                    a.as_bytes().cmp(b.as_bytes()),
                    "{a} vs {b}"
                );
            }
        }
    }

    fn row(id: &str, q: i64, correction: Option<Correction>) -> FactRow {
        FactRow {
            key: OwnedKey::of(id),
            subscription: 3,
            meter: -7,
            quantity: q,
            profile: 123_456,
            correction,
        }
    }

    #[test]
    fn blocks_round_trip_with_mixed_ids_and_corrections() {
        let mut rows = vec![
            row("b0000000-0000-4000-8000-000000000000", i64::MAX, None),
            row("A-text", i64::MIN, Some((202507, -5))),
            row(
                "a0000000-0000-4000-8000-000000000000",
                0,
                Some((202512, i128::MAX)),
            ),
        ];
        rows.sort_by(|a, b| cmp_keys(&a.key.as_ref(), &b.key.as_ref()));
        let mut buf = Vec::new();
        encode_block(&rows, &mut buf);
        let b = Block::decode(buf.clone()).unwrap();
        assert_eq!(b.len(), 3);
        for (i, r) in rows.iter().enumerate() {
            let back = b.row(i);
            assert_eq!(back.key, r.key);
            assert_eq!(back.quantity, r.quantity);
            assert_eq!(back.meter, -7);
            assert_eq!(back.correction, r.correction);
            assert_eq!(b.find(&r.key.as_ref()), Some(i));
        }
        assert_eq!(b.find(&KeyRef::of("zzz")), None);
        // Truncated or padded bytes are refused, never read past.
        for cut in 0..buf.len() {
            assert!(Block::decode(buf[..cut].to_vec()).is_err());
        }
        let mut long = buf;
        long.push(0);
        assert!(Block::decode(long).is_err());
    }

    #[test]
    fn merged_order_is_the_text_order_of_all_blocks_rows() {
        let ids: Vec<String> = (0..300u32)
            .map(|i| match i % 3 {
                0 => format!(
                    "{:08x}-0000-4000-8000-000000000000",
                    i.wrapping_mul(2654435761)
                ),
                1 => format!("t-{}", i.wrapping_mul(40503) % 997),
                _ => format!("{:08X}-0000-4000-8000-000000000000", i * 7),
            })
            .collect();
        let mut blocks = Vec::new();
        for part in ids.chunks(70) {
            let mut rows: Vec<FactRow> = part.iter().map(|id| row(id, 1, None)).collect();
            rows.sort_by(|a, b| cmp_keys(&a.key.as_ref(), &b.key.as_ref()));
            let mut buf = Vec::new();
            encode_block(&rows, &mut buf);
            blocks.push(Block::decode(buf).unwrap());
        }
        let merged: Vec<String> = merged_order(&blocks)
            .into_iter()
            .map(|(b, i)| match blocks[b as usize].key(i as usize) {
                RecordKey::Uuid(u) => format_uuid(&u, &mut [0u8; 36]).to_string(),
                RecordKey::Text(t) => t.to_string(),
            })
            .collect();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(merged, want);
    }

    #[test]
    fn all_uuid_blocks_take_16_bytes_an_id() {
        let rows: Vec<FactRow> = (0..100u32)
            .map(|i| row(&format!("{i:08x}-0000-4000-8000-000000000000"), 1, None))
            .collect();
        let mut buf = Vec::new();
        encode_block(&rows, &mut buf);
        assert!(buf.len() < 100 * (16 + 4 + 3), "{} bytes", buf.len());
    }

    #[test]
    fn day_sums_round_trip() {
        let sums = vec![
            DaySum {
                subscription: 1,
                meter: 2,
                booked: 0,
                rate: None,
                quantity: -4,
                rows: 2,
            },
            DaySum {
                subscription: 1,
                meter: 2,
                booked: 202601,
                rate: Some(-123),
                quantity: i64::MAX,
                rows: 1,
            },
        ];
        let mut buf = Vec::new();
        encode_day(&sums, &mut buf);
        assert_eq!(decode_day(&buf).unwrap(), sums);
        assert!(decode_day(&buf[..buf.len() - 1]).is_err());
    }
}
