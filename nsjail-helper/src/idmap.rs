//! uid_map / gid_map construction (DESIGN §2). Host root is never mapped;
//! the user's own ids (uid; primary, supplementary and tty gids) map to
//! themselves; every other id 1..count-1 maps into the sub range, with
//! holes wherever an identity id collides inside or outside.

use std::fmt;

use crate::subid::SubRange;

/// The kernel's limit on lines in one id map (since Linux 4.15).
pub const MAX_LINES: usize = 340;

/// One `inside outside count` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapLine {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

#[derive(Debug, PartialEq, Eq)]
pub struct MapError(String);

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MapError {}

/// Builds a map: `identity` ids first (ascending, one line each, 0
/// excluded), then the sub range's runs (ascending).
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
        // ns id x maps to host start + x, for x in 1..count.
        let last = range.count.saturating_sub(1).min(u64::from(u32::MAX - 1));
        let mut holes: Vec<u64> = ids
            .iter()
            .flat_map(|&id| {
                let id = u64::from(id);
                // Inside collision at x = id; outside collision at start + x = id.
                [Some(id), id.checked_sub(range.start)]
            })
            .flatten()
            .filter(|&x| x >= 1 && x <= last)
            .collect();
        holes.sort_unstable();
        holes.dedup();
        let mut next = 1u64;
        let mut push = |from: u64, to: u64| {
            // [from, to] inclusive, in ns ids.
            if from <= to {
                lines.push(MapLine {
                    inside: from as u32,
                    outside: (range.start + from) as u32,
                    count: (to - from + 1) as u32,
                });
            }
        };
        for hole in holes {
            if hole > next {
                push(next, hole - 1);
            }
            next = hole + 1;
        }
        push(next, last);
    }
    if lines.len() > MAX_LINES {
        return Err(MapError(format!(
            "{} map lines needed for {} identity-mapped ids; the kernel allows {MAX_LINES}",
            lines.len(),
            ids.len()
        )));
    }
    Ok(lines)
}

/// The text written to `/proc/PID/{u,g}id_map`.
pub fn render(lines: &[MapLine]) -> String {
    lines
        .iter()
        .map(|l| format!("{} {} {}\n", l.inside, l.outside, l.count))
        .collect()
}

/// One-line form for logs: `1001 1001 1 | 1 100001 1000 | …`.
pub fn render_compact(lines: &[MapLine]) -> String {
    lines
        .iter()
        .map(|l| format!("{} {} {}", l.inside, l.outside, l.count))
        .collect::<Vec<_>>()
        .join(" | ")
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
    }

    #[test]
    fn design_example_gid_map() {
        let map = build(&[1002, 1001, 5], Some(ALICE)).expect("map");
        assert_eq!(
            render_compact(&map),
            "5 5 1 | 1001 1001 1 | 1002 1002 1 | 1 100001 4 | 6 100006 995 | 1003 101003 64533"
        );
    }

    #[test]
    fn optional_subids_map_only_own_ids() {
        assert_eq!(render(&build(&[1001], None).expect("map")), "1001 1001 1\n");
    }

    #[test]
    fn root_is_never_mapped() {
        let map = build(&[0, 1001], Some(ALICE)).expect("map");
        assert!(map.iter().all(|l| l.inside != 0 && l.outside != 0));
        assert!(map.iter().any(|l| l.inside == 1001 && l.outside == 1001));
    }

    #[test]
    fn identity_id_inside_the_host_range_leaves_a_hole() {
        // gid 100005 is inside the sub range's host side (100000 + 5).
        let map = build(&[100005], Some(ALICE)).expect("map");
        check_invariants(&map, &[100005]);
        assert!(!map
            .iter()
            .any(|l| l.inside <= 5 && 5 < l.inside + l.count && l.inside != 100005));
    }

    #[test]
    fn uid_above_2_31() {
        let uid = 3_000_000_000;
        let map = build(&[uid], Some(ALICE)).expect("map");
        assert_eq!(
            render_compact(&map),
            "3000000000 3000000000 1 | 1 100001 65535"
        );
    }

    #[test]
    fn twenty_supplementary_groups() {
        let gids: Vec<u32> = (0..20).map(|i| 2000 + i * 7).chain([5, 1002]).collect();
        let map = build(&gids, Some(ALICE)).expect("map");
        check_invariants(&map, &gids);
        assert_eq!(map.iter().filter(|l| l.inside == l.outside).count(), 22);
    }

    #[test]
    fn too_many_ids_for_the_kernel() {
        let gids: Vec<u32> = (1..=400).map(|i| i * 3).collect();
        assert!(build(&gids, Some(ALICE)).is_err());
    }

    fn check_invariants(map: &[MapLine], identity: &[u32]) {
        assert!(map.len() <= MAX_LINES);
        for l in map {
            assert!(l.count > 0);
            assert!(l.inside != 0 && l.outside != 0, "maps root: {l:?}");
        }
        for &id in identity.iter().filter(|&&i| i != 0) {
            assert!(
                map.contains(&MapLine {
                    inside: id,
                    outside: id,
                    count: 1
                }),
                "{id} not identity-mapped"
            );
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
        for _ in 0..2000 {
            let n = next() % 30;
            let ids: Vec<u32> = (0..n)
                .map(|_| match next() % 4 {
                    0 => next() % 70000,
                    1 => 100000 + next() % 70000,
                    2 => next(),
                    _ => 0,
                })
                .collect();
            let sub = (next() % 5 != 0).then(|| SubRange {
                start: u64::from(1 + next() % 1_000_000),
                count: 65536 + u64::from(next() % 100_000),
            });
            let map = build(&ids, sub).expect("within limits");
            check_invariants(
                &map,
                &ids.iter()
                    .copied()
                    .filter(|&i| i != u32::MAX)
                    .collect::<Vec<_>>(),
            );
        }
    }
}
