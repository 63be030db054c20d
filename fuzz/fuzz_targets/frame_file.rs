//! The frame file reader over arbitrary bytes: never panics, never loops, never believes
//! a length; every issue lies inside the input and every frame's codes fit its segment's
//! quantizer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zzping_lib::file::{FileReader, Issue};

fuzz_target!(|data: &[u8]| {
    let mut r = FileReader::new("fuzz.zzp".into(), data);
    let mut frames = 0u64;
    loop {
        let top = match r.next_frame() {
            Ok(Some(f)) => f.codes.last().copied(),
            Ok(None) => break,
            Err(e) => panic!("reading bytes from memory is not an I/O error: {e}"),
        };
        frames += 1;
        let q = r.quantizer().expect("a frame has a segment");
        assert!(top.is_none_or(|c| c < q.code_count()));
        let h = r.header().expect("a frame has a segment");
        assert!(h.precision.is_finite());
    }
    // The smallest frame is 4 bytes.
    assert!(frames <= data.len() as u64 / 4);
    for i in r.issues() {
        let (Issue::TornTail { offset, len } | Issue::Garbage { offset, len, .. }) = i;
        assert!(offset + len <= data.len() as u64, "{i:?}");
    }
    assert!(r.issue_count() <= data.len() as u64);
});
