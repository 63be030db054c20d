//! The events file reader over arbitrary bytes: never panics, never loops, never believes
//! a length; every issue lies inside the input and every event a known kind returns has
//! the keys its kind requires.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zzping_lib::events::{EventKind, EventReader};
use zzping_lib::file::Issue;

fuzz_target!(|data: &[u8]| {
    let mut r = EventReader::new("fuzz.zze".into(), data);
    let mut events = 0u64;
    loop {
        let ev = match r.next_event() {
            Ok(Some(ev)) => ev,
            Ok(None) => break,
            Err(e) => panic!("reading bytes from memory is not an I/O error: {e}"),
        };
        events += 1;
        assert!(r.header().is_some(), "an event has a segment");
        match ev.kind {
            EventKind::LinkDown | EventKind::LinkUp | EventKind::CarrierOff | EventKind::CarrierOn => {
                assert!(ev.interface.is_some())
            }
            EventKind::Suspend => assert!(ev.duration_us.is_some()),
            EventKind::ClockStep => assert!(ev.step_us.is_some()),
            EventKind::HostMoved => assert!(ev.host.is_some() && ev.address.is_some()),
            _ => {}
        }
        // Encoding what was read gives an event that decodes the same.
        let mut b = Vec::new();
        ev.encode(&mut b);
        assert_eq!(zzping_lib::events::ContextEvent::decode(&b).map(|(e, _)| e), Ok(ev));
    }
    // The smallest event (a map, two keys, an int, a kind) is well over 8 bytes.
    assert!(events <= data.len() as u64 / 8);
    for i in r.issues() {
        let (Issue::TornTail { offset, len } | Issue::Garbage { offset, len, .. }) = i;
        assert!(offset + len <= data.len() as u64, "{i:?}");
    }
    assert!(r.issue_count() <= data.len() as u64);
});
