//! FrameData: the original daemon's log (`pingd-log-<address>-<YYYYMMDDTHH>.log`).

use crate::{LegacyError, LegacyFrame, MAX_LEGACY_REPLIES, invalid, uint};
use zzping_lib::msgpack::Cursor;

/// Parses the RFC 3339 timestamp of a full FrameData time (µs since the epoch; `None`
/// when invalid or before 1970).
pub use zzping_lib::time::parse_rfc3339_us;

/// Time of a FrameData frame, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameDataTime {
    /// A full RFC 3339 timestamp (µs since the epoch).
    Full(u64),
    /// µs since the last full timestamp.
    Delta(u64),
}

/// Decoder of FrameData frames; holds the last full timestamp.
#[derive(Debug, Clone, Default)]
pub struct FrameDataDecoder {
    last_full_us: Option<u64>,
}

impl FrameDataDecoder {
    /// A decoder at the start of a file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one frame from the start of `buf` into `out`; returns the bytes used. On
    /// error the decoder state is unchanged.
    pub fn decode(&mut self, buf: &[u8], out: &mut LegacyFrame) -> Result<usize, LegacyError> {
        let mut r = Cursor::new(buf);
        let (time_us, full) = if r.is_str()? {
            let at = r.pos();
            let s = r.str()?;
            let Some(t) = parse_rfc3339_us(s) else {
                return invalid(at, format!("invalid RFC 3339 timestamp {s:?}"));
            };
            let at = r.pos();
            if r.int()? != 0 {
                return invalid(at, "a full timestamp must be followed by 0");
            }
            (t, Some(t))
        } else {
            let at = r.pos();
            let d = uint(&mut r, u64::MAX, "time delta")?;
            let Some(base) = self.last_full_us else {
                return invalid(at, "delta timestamp before any full timestamp");
            };
            let Some(t) = base.checked_add(d) else {
                return invalid(at, "time delta out of range");
            };
            (t, None)
        };
        let inflight = uint(&mut r, u64::from(u32::MAX), "inflight")? as u32;
        let lost = uint(&mut r, u64::from(u32::MAX), "lost")? as u32;
        let at = r.pos();
        let n = r.array_len()?;
        if n as u64 > MAX_LEGACY_REPLIES {
            return invalid(at, "too many RTTs in one frame");
        }
        out.rtts_us.clear();
        for _ in 0..n {
            let v = uint(&mut r, u64::from(u32::MAX), "RTT")? as u32;
            out.rtts_us.push(v);
        }
        out.rtts_us.sort_unstable();
        out.time_us = time_us;
        out.inflight = inflight;
        out.lost_rolling = lost;
        out.replies = n as u32;
        out.percentiles = None;
        out.approximate = false;
        if full.is_some() {
            self.last_full_us = full;
        }
        Ok(r.pos())
    }
}

/// RFC 3339 with µs and a `+00:00` offset, as the original daemon wrote it.
pub fn framedata_timestamp(t_us: u64) -> String {
    let s = zzping_lib::time::rfc3339_us(t_us);
    format!("{}+00:00", s.trim_end_matches('Z'))
}

/// Appends one FrameData frame to `out` (the test and benchmark encoder).
pub fn encode_framedata_frame(
    out: &mut Vec<u8>,
    time: FrameDataTime,
    inflight: u16,
    lost: u16,
    rtts_us: &[u32],
) {
    // Writing into a Vec cannot fail.
    match time {
        FrameDataTime::Full(t) => {
            let _ = rmp::encode::write_str(out, &framedata_timestamp(t));
            let _ = rmp::encode::write_uint(out, 0);
        }
        FrameDataTime::Delta(d) => {
            let _ = rmp::encode::write_uint(out, d);
        }
    }
    let _ = rmp::encode::write_u16(out, inflight);
    let _ = rmp::encode::write_u16(out, lost);
    let _ = rmp::encode::write_array_len(out, rtts_us.len() as u32);
    for &v in rtts_us {
        let _ = rmp::encode::write_u32(out, v);
    }
}

/// Parses a FrameData file name `pingd-log-<address>-<YYYYMMDDTHH>.log` into the address
/// and the start of the hour (µs).
pub fn parse_framedata_name(name: &str) -> Option<(std::net::IpAddr, u64)> {
    let rest = name.strip_prefix("pingd-log-")?.strip_suffix(".log")?;
    let (addr, hour) = rest.rsplit_once('-')?;
    let addr = addr.parse().ok()?;
    let hb = hour.as_bytes();
    if hb.len() != 11 || hb[8] != b'T' {
        return None;
    }
    let day = zzping_lib::time::parse_day_name(&format!(
        "{}-{}-{}",
        &hour[0..4],
        &hour[4..6],
        &hour[6..8]
    ))?;
    let h: u64 = hour[9..11].parse().ok()?;
    (h < 24).then_some((addr, day + h * 3_600_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LegacyEnd, LegacyReader};

    const T0: u64 = 1_609_488_000_123_456; // 2021-01-01T08:00:00.123456Z

    #[test]
    fn timestamps_as_the_original_wrote_them() {
        assert_eq!(framedata_timestamp(T0), "2021-01-01T08:00:00.123456+00:00");
        assert_eq!(parse_rfc3339_us(&framedata_timestamp(T0)), Some(T0));
    }

    #[test]
    fn framedata_round_trip_with_torn_tail_and_gap() {
        let mut buf = Vec::new();
        encode_framedata_frame(&mut buf, FrameDataTime::Full(T0), 1, 2, &[900, 1000]);
        encode_framedata_frame(&mut buf, FrameDataTime::Delta(100_000), 0, 3, &[]);
        // 60 s gap, then a new full timestamp.
        encode_framedata_frame(
            &mut buf,
            FrameDataTime::Full(T0 + 60_200_000),
            0,
            0,
            &[70_000],
        );
        encode_framedata_frame(
            &mut buf,
            FrameDataTime::Delta(100_000),
            0,
            0,
            &[5, 4_000_000],
        );
        let good = buf.len();
        encode_framedata_frame(&mut buf, FrameDataTime::Delta(200_000), 0, 0, &[1, 2, 3]);
        for cut in good..buf.len() {
            let mut r = LegacyReader::framedata(&buf[..cut]);
            let mut got = Vec::new();
            while let Some(f) = r.next_frame().unwrap() {
                got.push((f.time_us, f.inflight, f.lost_rolling, f.rtts_us.clone()));
            }
            assert_eq!(
                got,
                vec![
                    (T0, 1, 2, vec![900, 1000]),
                    (T0 + 100_000, 0, 3, vec![]),
                    (T0 + 60_200_000, 0, 0, vec![70_000]),
                    (T0 + 60_300_000, 0, 0, vec![5, 4_000_000]),
                ]
            );
            if cut == good {
                assert_eq!(r.end(), &LegacyEnd::Clean);
            } else {
                assert_eq!(
                    r.end(),
                    &LegacyEnd::TornTail {
                        offset: good as u64,
                        len: (cut - good) as u64
                    }
                );
            }
        }
    }

    #[test]
    fn framedata_rejects_delta_first_and_reports_offset() {
        let mut buf = Vec::new();
        encode_framedata_frame(&mut buf, FrameDataTime::Full(T0), 0, 0, &[1]);
        let good = buf.len();
        buf.extend_from_slice(&[0x0a, 0x00, 0x00, 0xc1, 0x00]);
        let mut r = LegacyReader::framedata(&buf[..]);
        assert!(r.next_frame().unwrap().is_some());
        assert!(r.next_frame().unwrap().is_none());
        match r.end() {
            LegacyEnd::Invalid { offset, len, .. } => {
                assert_eq!(*offset, good as u64 + 3);
                assert_eq!(*len, 2);
            }
            e => panic!("{e:?}"),
        }
        let mut only_delta = Vec::new();
        encode_framedata_frame(&mut only_delta, FrameDataTime::Delta(5), 0, 0, &[]);
        assert!(matches!(
            FrameDataDecoder::new().decode(&only_delta, &mut LegacyFrame::default()),
            Err(LegacyError::Invalid { offset: 0, .. })
        ));
    }

    #[test]
    fn file_names() {
        let (a, t) = parse_framedata_name("pingd-log-192.168.1.1-20210101T08.log").unwrap();
        assert_eq!(a.to_string(), "192.168.1.1");
        assert_eq!(t, 1_609_488_000_000_000);
        let (a, _) = parse_framedata_name("pingd-log-2001:db8::1-20210101T23.log").unwrap();
        assert_eq!(a.to_string(), "2001:db8::1");
        for bad in [
            "pingd-log-192.168.1.1-20210101T24.log",
            "pingd-log-foo-20210101T08.log",
            "pingd-log-192.168.1.1-2021010108.log",
            "x.log",
        ] {
            assert!(parse_framedata_name(bad).is_none(), "{bad}");
        }
    }
}
