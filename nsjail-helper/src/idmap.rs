//! uid_map / gid_map construction (DESIGN §2). Host root is never mapped;
//! the user's own ids (uid; primary and supplementary gids) and the
//! groups lent to every set (`session::SharedGroup`: crontab) map to
//! themselves; every other namespace id 1..count-1 maps into the user's
//! subordinate range, with a hole wherever that would collide with an
//! identity-mapped id on either side.
#![forbid(unsafe_code)]

use std::fmt;

use crate::subid::SubRange;

/// The kernel's limit on lines in one id map (since Linux 4.15).
pub const MAX_LINES: usize = 340;

/// One `inside outside count` line of an id map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapLine {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// Why no map could be built.
#[derive(Debug, PartialEq, Eq)]
pub struct MapError(String);

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MapError {}

/// Builds a map: the `identity` ids first (ascending, one line each,
/// duplicates dropped, 0 and the invalid id 4294967295 excluded), then the
/// sub range's runs (ascending). Identity lines are deliberately not
/// merged, so `explain` shows each of the user's ids on its own line.
///
/// `sub` is checked again here (not only in `subid`), because a range
/// running past the largest id would otherwise wrap around to host root.
pub fn build(identity: &[u32], sub: Option<SubRange>) -> Result<Vec<MapLine>, MapError> {
    let mut ids: Vec<u32> = identity
        .iter()
        .copied()
        .filter(|&id| id != 0 && id != u32::MAX)
        .collect();
    ids.sort_unstable();
    ids.dedup();

    let mut lines: Vec<MapLine> = ids
        .iter()
        .map(|&id| MapLine {
            inside: id,
            outside: id,
            count: 1,
        })
        .collect();
    if let Some(range) = sub {
        range_runs(&ids, range, &mut lines)?;
    }

    if lines.len() > MAX_LINES {
        return Err(MapError(format!(
            "too many distinct ids to map: {} identity-mapped ids (the user's uid or gids) split the map into {} lines; the kernel allows at most {MAX_LINES}",
            ids.len(),
            lines.len(),
        )));
    }
    Ok(lines)
}

/// Appends the runs of `range`: namespace id x in 1..count maps to host id
/// start + x, except where x is an identity id (already mapped inside) or
/// start + x is one (already mapped outside). `ids` is sorted.
fn range_runs(ids: &[u32], range: SubRange, lines: &mut Vec<MapLine>) -> Result<(), MapError> {
    let invalid = |why: &str| {
        MapError(format!(
            "subordinate range {}+{} {why}",
            range.start, range.count
        ))
    };
    if range.start == 0 {
        return Err(invalid("contains host root (id 0)"));
    }
    // The last host id used is start + count - 1; it must stay below the
    // invalid id u32::MAX, which also keeps every sum below in range.
    range
        .start
        .checked_add(range.count)
        .filter(|&end| end <= u64::from(u32::MAX))
        .ok_or_else(|| invalid("runs past the largest id (4294967294)"))?;
    let last = range.count.saturating_sub(1);

    let mut holes: Vec<u64> = ids
        .iter()
        .flat_map(|&id| {
            let id = u64::from(id);
            [Some(id), id.checked_sub(range.start)]
        })
        .flatten()
        .filter(|&x| (1..=last).contains(&x))
        .collect();
    holes.sort_unstable();
    holes.dedup();

    // Every value below is less than start + count <= u32::MAX, so the conversions
    // cannot fail; the error is there only so no path can panic.
    let narrow = |v: u64| u32::try_from(v).map_err(|_| invalid("does not fit in 32 bits"));
    let mut push = |from: u64, to: u64| -> Result<(), MapError> {
        if from <= to {
            lines.push(MapLine {
                inside: narrow(from)?,
                outside: narrow(range.start + from)?,
                count: narrow(to - from + 1)?,
            });
        }
        Ok(())
    };
    let mut next = 1u64;
    for hole in holes {
        if hole > next {
            push(next, hole - 1)?;
        }
        next = hole + 1;
    }
    push(next, last)?;
    Ok(())
}

/// The text written to `/proc/PID/{u,g}id_map`: one `inside outside count`
/// line each.
pub fn render(lines: &[MapLine]) -> String {
    lines
        .iter()
        .map(|l| format!("{} {} {}\n", l.inside, l.outside, l.count))
        .collect()
}

/// One-line form for logs: `1001 1001 1 | 1 100001 1000 | ...`.
pub fn render_compact(lines: &[MapLine]) -> String {
    lines
        .iter()
        .map(|l| format!("{} {} {}", l.inside, l.outside, l.count))
        .collect::<Vec<_>>()
        .join(" | ")
}

/// A map line, for tests.
#[cfg(test)]
pub(crate) fn line(inside: u32, outside: u32, count: u32) -> MapLine {
    MapLine {
        inside,
        outside,
        count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: SubRange = SubRange {
        start: 100000,
        count: 65536,
    };

    #[test]
    fn design_example_uid_map() {
        let map = build(&[1001], Some(ALICE)).expect("map");
        assert_eq!(
            render_compact(&map),
            "1001 1001 1 | 1 100001 1000 | 1002 101002 64534"
        );
        assert_eq!(
            render(&map),
            "1001 1001 1\n1 100001 1000\n1002 101002 64534\n"
        );
    }

    #[test]
    fn design_example_gid_map() {
        // uid 1001, gid 1002, supplementary 1001, tty 5, given unsorted.
        let map = build(&[1002, 1001, 5, 1002], Some(ALICE)).expect("map");
        assert_eq!(
            render_compact(&map),
            "5 5 1 | 1001 1001 1 | 1002 1002 1 | 1 100001 4 | 6 100006 995 | 1003 101003 64533"
        );
        check_invariants(&map, &[1002, 1001, 5], Some(ALICE));
    }

    #[test]
    fn optional_subids_map_only_own_ids() {
        assert_eq!(render(&build(&[1001], None).expect("map")), "1001 1001 1\n");
        assert_eq!(
            build(&[1002, 5, 1001], None).expect("map"),
            [line(5, 5, 1), line(1001, 1001, 1), line(1002, 1002, 1)]
        );
        assert_eq!(build(&[], None).expect("map"), []);
    }

    #[test]
    fn root_and_the_invalid_id_are_never_mapped() {
        let map = build(&[0, 1001, u32::MAX, 0], Some(ALICE)).expect("map");
        assert_eq!(
            render_compact(&map),
            "1001 1001 1 | 1 100001 1000 | 1002 101002 64534"
        );
        assert_eq!(build(&[0], None).expect("map"), []);
    }

    #[test]
    fn identity_id_on_the_host_side_of_the_range_leaves_a_hole() {
        // gid 100005 is host id start + 5: ns id 5 must not map onto it.
        let map = build(&[100005], Some(ALICE)).expect("map");
        assert_eq!(
            map,
            [
                line(100005, 100005, 1),
                line(1, 100001, 4),
                line(6, 100006, 65530)
            ]
        );
        check_invariants(&map, &[100005], Some(ALICE));
    }

    #[test]
    fn one_id_colliding_on_both_sides() {
        // 100500 is above ns ids (count 65536) but on the host side; 600 is
        // an ns id. Both holes appear once each, in order.
        let map = build(&[100500, 600], Some(ALICE)).expect("map");
        assert_eq!(
            render_compact(&map),
            "600 600 1 | 100500 100500 1 | 1 100001 499 | 501 100501 99 | 601 100601 64935"
        );
        check_invariants(&map, &[100500, 600], Some(ALICE));
    }

    #[test]
    fn uid_above_2_31() {
        let uid = 3_000_000_000;
        let map = build(&[uid], Some(ALICE)).expect("map");
        assert_eq!(
            render_compact(&map),
            "3000000000 3000000000 1 | 1 100001 65535"
        );
        // And a range up there too, ending exactly at the largest id.
        let high = SubRange {
            start: u64::from(u32::MAX) - 65536,
            count: 65536,
        };
        let map = build(&[uid], Some(high)).expect("map");
        assert_eq!(
            render_compact(&map),
            "3000000000 3000000000 1 | 1 4294901760 65535"
        );
        check_invariants(&map, &[uid], Some(high));
    }

    #[test]
    fn twenty_supplementary_groups() {
        let gids: Vec<u32> = (0..20)
            .map(|i| 2000 + i * 7)
            .chain([5, 1002, 1001])
            .collect();
        let map = build(&gids, Some(ALICE)).expect("map");
        check_invariants(&map, &gids, Some(ALICE));
        assert_eq!(
            map.iter()
                .filter(|l| l.count == 1 && l.inside == l.outside)
                .count(),
            23
        );
        // 23 holes in the ns side split the range into 24 runs; 1001 and
        // 1002 are adjacent, so one fewer.
        assert_eq!(map.len(), 23 + 23);
    }

    #[test]
    fn too_many_ids_for_the_kernel() {
        let gids: Vec<u32> = (1..=200).map(|i| i * 3).collect();
        let e = build(&gids, Some(ALICE)).expect_err("over 340 lines");
        assert!(
            e.to_string()
                .starts_with("too many distinct ids to map: 200 identity-mapped ids"),
            "{e}"
        );
        assert!(e.to_string().contains("at most 340"), "{e}");
        // Without a range, the same ids fit only up to 340 lines.
        assert!(build(&gids, None).is_ok());
        let many: Vec<u32> = (1..=341).collect();
        assert!(build(&many, None).is_err());
        assert_eq!(build(&many[..340], None).expect("340 lines").len(), 340);
    }

    #[test]
    fn unusable_ranges_are_errors_not_wraparounds() {
        let past = SubRange {
            start: u64::from(u32::MAX) - 100,
            count: 65536,
        };
        assert!(build(&[1001], Some(past))
            .expect_err("wraps")
            .to_string()
            .contains("runs past the largest id"));
        let root = SubRange {
            start: 0,
            count: 65536,
        };
        assert!(build(&[1001], Some(root))
            .expect_err("root")
            .to_string()
            .contains("host root"));
        let huge = SubRange {
            start: u64::MAX,
            count: u64::MAX,
        };
        assert!(build(&[1001], Some(huge)).is_err());
    }

    #[test]
    fn tiny_ranges_add_nothing_or_little() {
        let one = SubRange {
            start: 100000,
            count: 1,
        };
        assert_eq!(
            build(&[1001], Some(one)).expect("map"),
            [line(1001, 1001, 1)]
        );
        let two = SubRange {
            start: 100000,
            count: 2,
        };
        assert_eq!(
            build(&[1001], Some(two)).expect("map"),
            [line(1001, 1001, 1), line(1, 100001, 1)]
        );
        let zero = SubRange {
            start: 100000,
            count: 0,
        };
        assert_eq!(
            build(&[1001], Some(zero)).expect("map"),
            [line(1001, 1001, 1)]
        );
    }

    /// Checks what the kernel and DESIGN §2 require of a map.
    fn check_invariants(map: &[MapLine], identity: &[u32], sub: Option<SubRange>) {
        assert!(map.len() <= MAX_LINES);
        let own: Vec<u32> = identity
            .iter()
            .copied()
            .filter(|&i| i != 0 && i != u32::MAX)
            .collect();
        for l in map {
            assert!(l.count > 0, "empty line {l:?}");
            assert!(l.inside != 0 && l.outside != 0, "maps root: {l:?}");
            let (i_end, o_end) = (
                u64::from(l.inside) + u64::from(l.count),
                u64::from(l.outside) + u64::from(l.count),
            );
            assert!(
                i_end <= u64::from(u32::MAX) && o_end <= u64::from(u32::MAX),
                "past the largest id: {l:?}"
            );
        }
        for &id in &own {
            assert!(map.contains(&line(id, id, 1)), "{id} not identity-mapped");
        }
        let overlap = |a: (u64, u64), b: (u64, u64)| a.0 < b.1 && b.0 < a.1;
        for (i, a) in map.iter().enumerate() {
            for b in &map[i + 1..] {
                let (ai, bi) = (u64::from(a.inside), u64::from(b.inside));
                let (ao, bo) = (u64::from(a.outside), u64::from(b.outside));
                let (ac, bc) = (u64::from(a.count), u64::from(b.count));
                assert!(
                    !overlap((ai, ai + ac), (bi, bi + bc)),
                    "inside overlap {a:?} {b:?}"
                );
                assert!(
                    !overlap((ao, ao + ac), (bo, bo + bc)),
                    "outside overlap {a:?} {b:?}"
                );
            }
        }
        // Identity lines come first, ascending; then the range, ascending.
        let ident = map
            .iter()
            .take_while(|l| own.contains(&l.inside) && l.inside == l.outside && l.count == 1)
            .count();
        let mut sorted_own = own.clone();
        sorted_own.sort_unstable();
        sorted_own.dedup();
        assert_eq!(ident, sorted_own.len(), "identity lines first: {map:?}");
        assert!(
            map[ident..].windows(2).all(|w| w[0].inside < w[1].inside),
            "range runs ascending"
        );
        // Every range line follows ns x -> start + x, and every ns id the
        // range could map without a collision is mapped.
        if let Some(r) = sub {
            let mut mapped = 0u64;
            for l in &map[ident..] {
                assert_eq!(u64::from(l.outside), r.start + u64::from(l.inside), "{l:?}");
                mapped += u64::from(l.count);
            }
            let last = r.count.saturating_sub(1);
            let mut holes: Vec<u64> = own
                .iter()
                .flat_map(|&id| [Some(u64::from(id)), u64::from(id).checked_sub(r.start)])
                .flatten()
                .filter(|&x| x >= 1 && x <= last)
                .collect();
            holes.sort_unstable();
            holes.dedup();
            assert_eq!(mapped, last - holes.len() as u64, "coverage of {r:?}");
        } else {
            assert_eq!(ident, map.len());
        }
    }

    /// Property test over many pseudo-random inputs (deterministic LCG).
    #[test]
    fn invariants_hold_for_random_inputs() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u32
        };
        let mut checked = 0;
        for _ in 0..3000 {
            let n = next() % 40;
            let start = u64::from(1 + next() % 1_000_000);
            let ids: Vec<u32> = (0..n)
                .map(|_| match next() % 6 {
                    0 => next() % 70000,
                    1 => (start as u32).wrapping_add(next() % 70000),
                    2 => next().wrapping_mul(2),
                    3 => 65534,
                    4 => u32::MAX,
                    _ => 0,
                })
                .collect();
            let sub = (next() % 5 != 0).then(|| SubRange {
                start,
                count: 1 + u64::from(next() % 200_000),
            });
            let map = build(&ids, sub).expect("within limits");
            check_invariants(&map, &ids, sub);
            checked += 1;
        }
        assert_eq!(checked, 3000);
    }
}
