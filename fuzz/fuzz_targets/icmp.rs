//! The daemon's ICMP parser over arbitrary packets, as both raw IPv4 (with an IP header)
//! and datagram sockets deliver them: never panics, and an echo reply's fields are the
//! packet's bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zzping_daemon::icmp::{Message, parse_v4, parse_v6, strip_ipv4_header};

fn check(icmp: &[u8], m: Message) {
    if let Message::EchoReply { ident, seq, .. } = m {
        assert_eq!(ident, u16::from_be_bytes([icmp[4], icmp[5]]));
        assert_eq!(seq, u16::from_be_bytes([icmp[6], icmp[7]]));
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(icmp) = strip_ipv4_header(data)
        && let Ok(m) = parse_v4(icmp)
    {
        check(icmp, m);
    }
    if let Ok(m) = parse_v4(data) {
        check(data, m);
    }
    if let Ok(m) = parse_v6(data) {
        check(data, m);
    }
});
