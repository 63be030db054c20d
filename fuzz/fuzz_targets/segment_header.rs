//! Segment headers over arbitrary bytes: a header that decodes is valid (version, period,
//! precision in range) and survives a round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zzping_lib::file::SegmentHeader;
use zzping_lib::quantizer::{MAX_PRECISION, MIN_PRECISION};

fuzz_target!(|data: &[u8]| {
    if let Ok((h, used)) = SegmentHeader::decode(data) {
        assert!(used <= data.len());
        assert!((MIN_PRECISION..=MAX_PRECISION).contains(&h.precision));
        let mut again = Vec::new();
        h.encode(&mut again);
        let (h2, used2) = SegmentHeader::decode(&again).expect("our own encoding decodes");
        assert_eq!(h2, h);
        assert_eq!(used2, again.len());
    }
});
