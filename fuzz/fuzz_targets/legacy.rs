//! The original zzping's FrameData and FrameDataQ decoders (through the streaming reader
//! `zzping convert` uses) over arbitrary bytes: never panic, always make progress.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zzping_legacy::{LegacyReader, MAX_LEGACY_REPLIES, decode_fdq_header, detect};

fuzz_target!(|data: &[u8]| {
    let _ = detect(data);
    let _ = decode_fdq_header(data);
    let mut r = LegacyReader::framedata(data);
    let mut n = 0usize;
    while let Ok(Some(f)) = r.next_frame() {
        assert!(f.rtts_us.len() as u64 <= MAX_LEGACY_REPLIES);
        n += 1;
        assert!(n <= data.len(), "more frames than bytes");
    }
    if let Ok(mut r) = LegacyReader::fdq(data) {
        let mut n = 0usize;
        while let Ok(Some(f)) = r.next_frame() {
            assert!(f.rtts_us.len() as u64 <= MAX_LEGACY_REPLIES);
            n += 1;
            assert!(n <= data.len(), "more frames than bytes");
        }
    }
});
