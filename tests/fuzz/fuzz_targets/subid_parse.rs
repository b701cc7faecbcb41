//! The subuid/subgid parser must never panic, and any range it selects must
//! be usable (long enough, no host root, none of the user's own ids), and
//! the maps built from it must hold the id-map invariants.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = Path::new("/etc/subuid");
    let (entries, _warnings) = nsjail::subid::parse(path, text);
    for owner in ["alice", "1001", "root"] {
        if let Ok(Some(r)) = nsjail::subid::select(&entries, path, owner, 1001, &[1001, 5]) {
            assert!(r.count >= nsjail::subid::MIN_RANGE && r.start > 0);
            assert!(!(r.start..r.start + r.count).contains(&1001));
            let map = nsjail::idmap::build(&[1001, 5], Some(r)).expect("map within limits");
            assert!(map.iter().all(|l| l.inside != 0 && l.outside != 0));
        }
    }
});
