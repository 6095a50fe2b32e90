//! Folio allocation, the one place that decides which folios a group of documents takes: from the
//! company's CAFs of one type, locked by the store and given here in order (oldest range first),
//! the next consecutive folios, moving to the next CAF when one runs out. Pure: the store locks and
//! writes, this decides, so both backends share the rule and it is tested without a database.
//!
//! The guarantees it serves: a folio is handed out once, none is skipped (a document that fails
//! before commit gives its folio back by re-allocating the group without it), and a CAF's
//! `next_folio` only moves forward.

/// A CAF's remaining range as the store read it under lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CafRange {
    pub caf_id: i64,
    /// The next folio to hand out.
    pub next: i64,
    /// The last folio of the range (`H` in the CAF).
    pub hasta: i64,
}

impl CafRange {
    pub fn left(&self) -> i64 {
        (self.hasta - self.next + 1).max(0)
    }
}

/// One folio handed out, from which CAF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Folio {
    pub caf_id: i64,
    pub folio: i64,
}

/// What a group takes: a folio per document in order (fewer than asked when the CAFs run out),
/// and each touched CAF's new `next_folio`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allocation {
    pub folios: Vec<Folio>,
    pub advanced: Vec<(i64, i64)>,
}

/// The next `n` folios from `cafs`, in the order given.
pub fn allocate(cafs: &[CafRange], n: usize) -> Allocation {
    let mut out = Allocation::default();
    let mut want = n as i64;
    for c in cafs {
        if want == 0 {
            break;
        }
        let take = c.left().min(want);
        if take == 0 {
            continue;
        }
        out.folios.extend((c.next..c.next + take).map(|folio| Folio { caf_id: c.caf_id, folio }));
        out.advanced.push((c.caf_id, c.next + take));
        want -= take;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_group_continues_into_the_next_caf() {
        let cafs = [CafRange { caf_id: 7, next: 9, hasta: 10 }, CafRange { caf_id: 8, next: 11, hasta: 20 }];
        let a = allocate(&cafs, 4);
        let f: Vec<(i64, i64)> = a.folios.iter().map(|f| (f.caf_id, f.folio)).collect();
        assert_eq!(f, vec![(7, 9), (7, 10), (8, 11), (8, 12)]);
        assert_eq!(a.advanced, vec![(7, 11), (8, 13)]);
    }

    #[test]
    fn fewer_folios_than_documents_when_the_cafs_run_out() {
        let a = allocate(&[CafRange { caf_id: 1, next: 5, hasta: 6 }], 5);
        assert_eq!(a.folios.len(), 2);
        assert_eq!(a.advanced, vec![(1, 7)]);
        assert_eq!(allocate(&[CafRange { caf_id: 1, next: 7, hasta: 6 }], 1), Allocation::default());
        assert_eq!(allocate(&[], 3), Allocation::default());
    }

    proptest! {
        /// Whatever the ranges and the group size: folios are distinct, each inside its CAF,
        /// contiguous within a CAF from its `next`, and `advanced` says where each CAF now starts.
        #[test]
        fn allocation_never_repeats_or_skips(ranges in proptest::collection::vec((1i64..50, 0i64..20), 0..5), n in 0usize..80) {
            let mut start = 1;
            let cafs: Vec<CafRange> = ranges.iter().enumerate().map(|(i, (len, used))| {
                let c = CafRange { caf_id: i as i64, next: start + used.min(len), hasta: start + len - 1 };
                start += len;
                c
            }).collect();
            let a = allocate(&cafs, n);
            let total: i64 = cafs.iter().map(CafRange::left).sum();
            prop_assert_eq!(a.folios.len() as i64, total.min(n as i64));
            let mut seen = std::collections::HashSet::new();
            for f in &a.folios {
                prop_assert!(seen.insert(f.folio));
                let c = cafs.iter().find(|c| c.caf_id == f.caf_id).unwrap();
                prop_assert!(f.folio >= c.next && f.folio <= c.hasta);
            }
            for (id, next) in &a.advanced {
                let c = cafs.iter().find(|c| c.caf_id == *id).unwrap();
                let taken: Vec<i64> = a.folios.iter().filter(|f| f.caf_id == *id).map(|f| f.folio).collect();
                prop_assert_eq!(taken, (c.next..*next).collect::<Vec<_>>());
            }
        }
    }
}
