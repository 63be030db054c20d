//! Pyramid sidecars over arbitrary bytes: never panics, and a sidecar that decodes holds
//! no more summaries than its bytes can encode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zzping_lib::pyramid::decode_sidecar;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = decode_sidecar(data) {
        // A summary record is at least 12 bytes (an array of 10 uints and an array).
        let n: usize = p.levels.iter().map(|l| l.summaries.len()).sum();
        assert!(n <= data.len() / 12);
        for l in &p.levels {
            for s in &l.summaries {
                assert!(s.hist.entries().len() <= data.len() / 2);
            }
        }
    }
});
