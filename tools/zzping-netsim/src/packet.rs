//! Parsing and emission of the IP/ICMP packets the simulator handles.
//!
//! The TUN device is opened with `IFF_NO_PI`, so every frame read from it is
//! a bare IPv4 or IPv6 datagram. This module recognises ICMP echo requests
//! (IPv4 ICMP type 8, ICMPv6 type 128) and builds the answers a simulated
//! host or router sends back:
//!
//! * echo replies (IPv4 type 0, ICMPv6 type 129), with the identifier,
//!   sequence number and payload of the request;
//! * ICMP errors ([`IcmpErrorKind`]: host / network unreachable,
//!   administratively prohibited, TTL exceeded) sent from a router address,
//!   embedding the offending datagram as real routers do (up to 576 bytes in
//!   total for IPv4, RFC 1812; up to the 1280-byte minimum MTU for IPv6,
//!   RFC 4443), with the TTL it had when it reached that router.
//!
//! All checksums are computed (IPv4 header checksum, ICMP checksum, ICMPv6
//! checksum including the IPv6 pseudo-header) and verified on input: a
//! request with a bad checksum is rejected, as a real host would drop it.
//! No function here panics on any input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

/// IP protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// IPv6 next-header number of ICMPv6.
pub const PROTO_ICMPV6: u8 = 58;
/// Hop limit / TTL used for every packet the simulator emits.
pub const EMIT_TTL: u8 = 64;

/// An ICMP error a simulated router sends, with its type and code per family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IcmpErrorKind {
    /// Host unreachable: IPv4 type 3 code 1, ICMPv6 type 1 code 3 (address
    /// unreachable). Linux reports `EHOSTUNREACH`.
    HostUnreachable,
    /// Network unreachable: IPv4 type 3 code 0, ICMPv6 type 1 code 0 (no
    /// route to destination). Linux reports `ENETUNREACH`.
    NetUnreachable,
    /// Communication administratively prohibited: IPv4 type 3 code 13,
    /// ICMPv6 type 1 code 1. Linux reports `EHOSTUNREACH` (IPv4) and
    /// `EACCES` (IPv6).
    AdminProhibited,
    /// Time (hop limit) exceeded in transit: IPv4 type 11 code 0, ICMPv6
    /// type 3 code 0. Linux reports `EHOSTUNREACH`.
    TtlExceeded,
}

impl IcmpErrorKind {
    /// `(type, code)` of this error in IPv4 (`v6 = false`) or ICMPv6.
    pub fn type_code(self, v6: bool) -> (u8, u8) {
        match (self, v6) {
            (IcmpErrorKind::HostUnreachable, false) => (3, 1),
            (IcmpErrorKind::HostUnreachable, true) => (1, 3),
            (IcmpErrorKind::NetUnreachable, false) => (3, 0),
            (IcmpErrorKind::NetUnreachable, true) => (1, 0),
            (IcmpErrorKind::AdminProhibited, false) => (3, 13),
            (IcmpErrorKind::AdminProhibited, true) => (1, 1),
            (IcmpErrorKind::TtlExceeded, false) => (11, 0),
            (IcmpErrorKind::TtlExceeded, true) => (3, 0),
        }
    }
}

/// Why a datagram was not accepted as an ICMP echo request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The buffer is shorter than the headers it claims to hold.
    #[error("packet truncated")]
    Truncated,
    /// The IP version nibble is neither 4 nor 6.
    #[error("unsupported IP version {0}")]
    BadVersion(u8),
    /// IPv4 header length field is invalid.
    #[error("invalid IPv4 header length")]
    BadHeaderLength,
    /// The IP length field disagrees with the buffer.
    #[error("invalid IP length field")]
    BadLength,
    /// The IPv4 header checksum is wrong.
    #[error("bad IPv4 header checksum")]
    BadIpChecksum,
    /// The datagram is a fragment (not handled).
    #[error("fragmented datagram")]
    Fragment,
    /// The datagram does not carry ICMP/ICMPv6 directly.
    #[error("not ICMP (protocol {0})")]
    NotIcmp(u8),
    /// The ICMP checksum is wrong.
    #[error("bad ICMP checksum")]
    BadIcmpChecksum,
    /// ICMP message other than an echo request.
    #[error("ICMP type {0} code {1} is not an echo request")]
    NotEchoRequest(u8, u8),
}

/// IP family of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4 with ICMP.
    Ipv4,
    /// IPv6 with ICMPv6.
    Ipv6,
}

/// A parsed ICMP message (any type), with its IP addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpPacket<'a> {
    /// IP family.
    pub family: Family,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// ICMP type.
    pub icmp_type: u8,
    /// ICMP code.
    pub icmp_code: u8,
    /// The whole ICMP message (header and body), checksum verified.
    pub icmp: &'a [u8],
}

impl IcmpPacket<'_> {
    /// Identifier field (bytes 4..6 of the ICMP message).
    pub fn ident(&self) -> u16 {
        be16(self.icmp, 4)
    }
    /// Sequence field (bytes 6..8 of the ICMP message).
    pub fn seq(&self) -> u16 {
        be16(self.icmp, 6)
    }
    /// Bytes after the 8-byte ICMP header.
    pub fn body(&self) -> &[u8] {
        self.icmp.get(8..).unwrap_or(&[])
    }
}

/// An ICMP echo request read from the TUN device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoRequest {
    /// IP family.
    pub family: Family,
    /// Source address (the prober).
    pub src: IpAddr,
    /// Destination address (the simulated host).
    pub dst: IpAddr,
    /// ICMP identifier.
    pub ident: u16,
    /// ICMP sequence number.
    pub seq: u16,
    /// Number of payload bytes after the 8-byte ICMP header.
    pub payload_len: usize,
    /// IPv4 TTL / IPv6 hop limit as the prober sent it.
    pub ttl: u8,
}

fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(s) => u16::from_be_bytes([s[0], s[1]]),
        None => 0,
    }
}

/// Internet checksum (RFC 1071) over `data`, starting from partial sum `init`.
pub fn checksum_with(init: u32, data: &[u8]) -> u16 {
    let mut sum = u64::from(init);
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(u16::from_be_bytes([*last, 0]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Internet checksum (RFC 1071) of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    checksum_with(0, data)
}

/// Partial sum of the IPv6 pseudo-header for an upper-layer packet.
fn pseudo_v6(src: &Ipv6Addr, dst: &Ipv6Addr, len: u32, next: u8) -> u32 {
    let mut sum: u32 = 0;
    for a in [src.octets(), dst.octets()] {
        for c in a.chunks_exact(2) {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
    }
    sum += len >> 16;
    sum += len & 0xffff;
    sum += u32::from(next);
    sum
}

/// ICMPv6 checksum of `icmp` between `src` and `dst`.
pub fn icmpv6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, icmp: &[u8]) -> u16 {
    let len = u32::try_from(icmp.len()).unwrap_or(u32::MAX);
    checksum_with(pseudo_v6(src, dst, len, PROTO_ICMPV6), icmp)
}

/// Parse any ICMP / ICMPv6 datagram, verifying lengths and checksums.
pub fn parse_icmp(pkt: &[u8]) -> Result<IcmpPacket<'_>, ParseError> {
    let first = *pkt.first().ok_or(ParseError::Truncated)?;
    match first >> 4 {
        4 => parse_v4(pkt),
        6 => parse_v6(pkt),
        v => Err(ParseError::BadVersion(v)),
    }
}

fn parse_v4(pkt: &[u8]) -> Result<IcmpPacket<'_>, ParseError> {
    if pkt.len() < 20 {
        return Err(ParseError::Truncated);
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    if ihl < 20 {
        return Err(ParseError::BadHeaderLength);
    }
    if pkt.len() < ihl {
        return Err(ParseError::Truncated);
    }
    let total = usize::from(be16(pkt, 2));
    if total < ihl || total > pkt.len() {
        return Err(ParseError::BadLength);
    }
    if checksum(&pkt[..ihl]) != 0 {
        return Err(ParseError::BadIpChecksum);
    }
    let frag = be16(pkt, 6);
    if frag & 0x3fff != 0 {
        // MF set or non-zero offset.
        return Err(ParseError::Fragment);
    }
    if pkt[9] != PROTO_ICMP {
        return Err(ParseError::NotIcmp(pkt[9]));
    }
    let icmp = &pkt[ihl..total];
    if icmp.len() < 8 {
        return Err(ParseError::Truncated);
    }
    if checksum(icmp) != 0 {
        return Err(ParseError::BadIcmpChecksum);
    }
    let src = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
    let dst = Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]);
    Ok(IcmpPacket {
        family: Family::Ipv4,
        src: src.into(),
        dst: dst.into(),
        icmp_type: icmp[0],
        icmp_code: icmp[1],
        icmp,
    })
}

fn v6_addr(b: &[u8]) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[..16]);
    Ipv6Addr::from(o)
}

fn parse_v6(pkt: &[u8]) -> Result<IcmpPacket<'_>, ParseError> {
    if pkt.len() < 40 {
        return Err(ParseError::Truncated);
    }
    let plen = usize::from(be16(pkt, 4));
    if plen == 0 || 40 + plen > pkt.len() {
        return Err(ParseError::BadLength);
    }
    let next = pkt[6];
    if next != PROTO_ICMPV6 {
        return Err(ParseError::NotIcmp(next));
    }
    let src = v6_addr(&pkt[8..24]);
    let dst = v6_addr(&pkt[24..40]);
    let icmp = &pkt[40..40 + plen];
    if icmp.len() < 8 {
        return Err(ParseError::Truncated);
    }
    if icmpv6_checksum(&src, &dst, icmp) != 0 {
        return Err(ParseError::BadIcmpChecksum);
    }
    Ok(IcmpPacket {
        family: Family::Ipv6,
        src: src.into(),
        dst: dst.into(),
        icmp_type: icmp[0],
        icmp_code: icmp[1],
        icmp,
    })
}

/// TTL (IPv4) or hop limit (IPv6) of a datagram `parse_icmp` accepted.
fn ttl_of(pkt: &[u8], family: Family) -> u8 {
    match family {
        Family::Ipv4 => pkt.get(8).copied().unwrap_or(0),
        Family::Ipv6 => pkt.get(7).copied().unwrap_or(0),
    }
}

/// Parse an ICMP echo request (IPv4 type 8 code 0 or ICMPv6 type 128 code 0).
pub fn parse_echo_request(pkt: &[u8]) -> Result<EchoRequest, ParseError> {
    let p = parse_icmp(pkt)?;
    let want = match p.family {
        Family::Ipv4 => 8,
        Family::Ipv6 => 128,
    };
    if p.icmp_type != want || p.icmp_code != 0 {
        return Err(ParseError::NotEchoRequest(p.icmp_type, p.icmp_code));
    }
    Ok(EchoRequest {
        family: p.family,
        src: p.src,
        dst: p.dst,
        ident: p.ident(),
        seq: p.seq(),
        payload_len: p.body().len(),
        ttl: ttl_of(pkt, p.family),
    })
}

/// Build an IPv4 datagram carrying `icmp` (whose checksum field is filled in
/// here) from `src` to `dst`, with TTL [`EMIT_TTL`].
pub fn build_ipv4_icmp(src: Ipv4Addr, dst: Ipv4Addr, ip_id: u16, icmp: &[u8]) -> Vec<u8> {
    build_ipv4_icmp_ttl(src, dst, ip_id, EMIT_TTL, icmp)
}

/// [`build_ipv4_icmp`] with a given TTL.
pub fn build_ipv4_icmp_ttl(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ip_id: u16,
    ttl: u8,
    icmp: &[u8],
) -> Vec<u8> {
    let total = 20 + icmp.len();
    let total16 = u16::try_from(total).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&[0x45, 0]);
    out.extend_from_slice(&total16.to_be_bytes());
    out.extend_from_slice(&ip_id.to_be_bytes());
    out.extend_from_slice(&[0, 0, ttl, PROTO_ICMP, 0, 0]);
    out.extend_from_slice(&src.octets());
    out.extend_from_slice(&dst.octets());
    let hsum = checksum(&out[..20]);
    out[10..12].copy_from_slice(&hsum.to_be_bytes());
    out.extend_from_slice(icmp);
    if out.len() >= 24 {
        out[22] = 0;
        out[23] = 0;
        let csum = checksum(&out[20..]);
        out[22..24].copy_from_slice(&csum.to_be_bytes());
    }
    out
}

/// Build an IPv6 datagram carrying `icmp` (whose checksum field is filled in
/// here, including the pseudo-header) from `src` to `dst`, with hop limit
/// [`EMIT_TTL`].
pub fn build_ipv6_icmp(src: Ipv6Addr, dst: Ipv6Addr, icmp: &[u8]) -> Vec<u8> {
    build_ipv6_icmp_ttl(src, dst, EMIT_TTL, icmp)
}

/// [`build_ipv6_icmp`] with a given hop limit.
pub fn build_ipv6_icmp_ttl(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, icmp: &[u8]) -> Vec<u8> {
    let plen = u16::try_from(icmp.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(40 + icmp.len());
    out.extend_from_slice(&[0x60, 0, 0, 0]);
    out.extend_from_slice(&plen.to_be_bytes());
    out.extend_from_slice(&[PROTO_ICMPV6, hop_limit]);
    out.extend_from_slice(&src.octets());
    out.extend_from_slice(&dst.octets());
    out.extend_from_slice(icmp);
    if out.len() >= 44 {
        out[42] = 0;
        out[43] = 0;
        let csum = icmpv6_checksum(&src, &dst, &out[40..]);
        out[42..44].copy_from_slice(&csum.to_be_bytes());
    }
    out
}

/// Build an ICMP echo request datagram (used by tests and tools).
pub fn build_echo_request(
    src: IpAddr,
    dst: IpAddr,
    ident: u16,
    seq: u16,
    payload: &[u8],
) -> Option<Vec<u8>> {
    let mut icmp = Vec::with_capacity(8 + payload.len());
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            icmp.extend_from_slice(&[8, 0, 0, 0]);
            icmp.extend_from_slice(&ident.to_be_bytes());
            icmp.extend_from_slice(&seq.to_be_bytes());
            icmp.extend_from_slice(payload);
            Some(build_ipv4_icmp(s, d, seq, &icmp))
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            icmp.extend_from_slice(&[128, 0, 0, 0]);
            icmp.extend_from_slice(&ident.to_be_bytes());
            icmp.extend_from_slice(&seq.to_be_bytes());
            icmp.extend_from_slice(payload);
            Some(build_ipv6_icmp(s, d, &icmp))
        }
        _ => None,
    }
}

/// Build the echo reply for the echo request datagram `req`.
///
/// The reply swaps the addresses, keeps identifier, sequence and payload,
/// and carries fresh checksums. `ip_id` is used as the IPv4 identification.
pub fn echo_reply(req: &[u8], ip_id: u16) -> Result<Vec<u8>, ParseError> {
    echo_reply_ttl(req, ip_id, EMIT_TTL)
}

/// [`echo_reply`] with a given TTL / hop limit (a host `n` routers away
/// answers with `EMIT_TTL - n`, as each router decrements it).
pub fn echo_reply_ttl(req: &[u8], ip_id: u16, ttl: u8) -> Result<Vec<u8>, ParseError> {
    let p = parse_icmp(req)?;
    let mut icmp = p.icmp.to_vec();
    match (p.family, p.src, p.dst) {
        (Family::Ipv4, IpAddr::V4(s), IpAddr::V4(d)) => {
            if p.icmp_type != 8 || p.icmp_code != 0 {
                return Err(ParseError::NotEchoRequest(p.icmp_type, p.icmp_code));
            }
            icmp[0] = 0;
            Ok(build_ipv4_icmp_ttl(d, s, ip_id, ttl, &icmp))
        }
        (Family::Ipv6, IpAddr::V6(s), IpAddr::V6(d)) => {
            if p.icmp_type != 128 || p.icmp_code != 0 {
                return Err(ParseError::NotEchoRequest(p.icmp_type, p.icmp_code));
            }
            icmp[0] = 129;
            Ok(build_ipv6_icmp_ttl(d, s, ttl, &icmp))
        }
        _ => Err(ParseError::BadVersion(0)),
    }
}

/// Build a destination-unreachable error for datagram `req`, sent by
/// `router` back to the request's source.
///
/// IPv4: type 3 code 1 (host unreachable); the body embeds the original IP
/// header and as much of its payload as fits in a 576-byte datagram.
/// IPv6: type 1 code 3 (address unreachable); the body embeds as much of the
/// original datagram as fits in 1280 bytes. `router` must be of the same
/// family as the request.
pub fn unreachable(req: &[u8], router: IpAddr, ip_id: u16) -> Result<Vec<u8>, ParseError> {
    icmp_error(
        req,
        router,
        IcmpErrorKind::HostUnreachable,
        ip_id,
        EMIT_TTL,
        None,
    )
}

/// Build ICMP error `kind` for datagram `req`, sent by `router` back to the
/// request's source with TTL / hop limit `ttl`. The body quotes the request
/// as [`unreachable()`] does; with `quoted_ttl`, the quote carries that TTL /
/// hop limit (what the request had left when it reached the router; the
/// quoted IPv4 header checksum is recomputed). `router` must be of the same
/// family as the request.
pub fn icmp_error(
    req: &[u8],
    router: IpAddr,
    kind: IcmpErrorKind,
    ip_id: u16,
    ttl: u8,
    quoted_ttl: Option<u8>,
) -> Result<Vec<u8>, ParseError> {
    let p = parse_icmp(req)?;
    match (p.src, router) {
        (IpAddr::V4(s), IpAddr::V4(r)) => {
            let total = usize::from(be16(req, 2)).min(req.len());
            let mut quote = req[..total.min(576 - 28)].to_vec();
            if let Some(t) = quoted_ttl {
                let ihl = usize::from(quote[0] & 0x0f) * 4;
                quote[8] = t;
                quote[10] = 0;
                quote[11] = 0;
                let c = checksum(&quote[..ihl]);
                quote[10..12].copy_from_slice(&c.to_be_bytes());
            }
            let (ty, code) = kind.type_code(false);
            let mut icmp = Vec::with_capacity(8 + quote.len());
            icmp.extend_from_slice(&[ty, code, 0, 0, 0, 0, 0, 0]);
            icmp.extend_from_slice(&quote);
            Ok(build_ipv4_icmp_ttl(r, s, ip_id, ttl, &icmp))
        }
        (IpAddr::V6(s), IpAddr::V6(r)) => {
            let total = (40 + usize::from(be16(req, 4))).min(req.len());
            let mut quote = req[..total.min(1280 - 48)].to_vec();
            if let Some(t) = quoted_ttl {
                quote[7] = t;
            }
            let (ty, code) = kind.type_code(true);
            let mut icmp = Vec::with_capacity(8 + quote.len());
            icmp.extend_from_slice(&[ty, code, 0, 0, 0, 0, 0, 0]);
            icmp.extend_from_slice(&quote);
            Ok(build_ipv6_icmp_ttl(r, s, ttl, &icmp))
        }
        _ => Err(ParseError::BadVersion(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v4(a: &str) -> IpAddr {
        a.parse().unwrap()
    }

    #[test]
    fn rfc1071_example() {
        // Example from RFC 1071 section 3: sum is 0xddf2, checksum 0x220d.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), 0x220d);
        // Odd length pads with a zero byte.
        assert_eq!(checksum(&[0xff]), !0xff00);
    }

    #[test]
    fn known_ipv4_echo_request_checksums() {
        // A hand-assembled request as Linux `ping` sends it (DF set, 8 byte payload);
        // checksums are filled in below and must then verify.
        let pkt: [u8; 36] = [
            0x45, 0x00, 0x00, 0x24, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00, 0xc6, 0x12,
            0x00, 0x01, 0xc6, 0x12, 0x00, 0x0a, 0x08, 0x00, 0x00, 0x00, 0x12, 0x34, 0x00, 0x01,
            0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
        ];
        let mut pkt = pkt.to_vec();
        let h = checksum(&pkt[..20]);
        pkt[10..12].copy_from_slice(&h.to_be_bytes());
        let c = checksum(&pkt[20..]);
        pkt[22..24].copy_from_slice(&c.to_be_bytes());
        let r = parse_echo_request(&pkt).unwrap();
        assert_eq!(r.family, Family::Ipv4);
        assert_eq!(r.src, v4("198.18.0.1"));
        assert_eq!(r.dst, v4("198.18.0.10"));
        assert_eq!((r.ident, r.seq, r.payload_len), (0x1234, 1, 8));
        // Flip a payload bit: checksum must catch it.
        pkt[30] ^= 1;
        assert_eq!(parse_echo_request(&pkt), Err(ParseError::BadIcmpChecksum));
        pkt[30] ^= 1;
        pkt[8] ^= 1; // TTL
        assert_eq!(parse_echo_request(&pkt), Err(ParseError::BadIpChecksum));
    }

    #[test]
    fn ipv4_reply_roundtrip() {
        let req = build_echo_request(v4("198.18.0.1"), v4("198.18.0.10"), 77, 9, b"hello").unwrap();
        let rep = echo_reply(&req, 5).unwrap();
        assert_eq!(checksum(&rep[..20]), 0);
        let p = parse_icmp(&rep).unwrap();
        assert_eq!((p.icmp_type, p.icmp_code), (0, 0));
        assert_eq!(p.src, v4("198.18.0.10"));
        assert_eq!(p.dst, v4("198.18.0.1"));
        assert_eq!((p.ident(), p.seq()), (77, 9));
        assert_eq!(p.body(), b"hello");
        // A reply is not a request.
        assert_eq!(echo_reply(&rep, 1), Err(ParseError::NotEchoRequest(0, 0)));
    }

    #[test]
    fn ipv6_reply_roundtrip_and_pseudo_header() {
        let s = v4("2001:db8::1");
        let d = v4("2001:db8::10");
        let req = build_echo_request(s, d, 1, 2, &[0xab; 56]).unwrap();
        let r = parse_echo_request(&req).unwrap();
        assert_eq!(
            (r.family, r.ident, r.seq, r.payload_len),
            (Family::Ipv6, 1, 2, 56)
        );
        let rep = echo_reply(&req, 0).unwrap();
        let p = parse_icmp(&rep).unwrap();
        assert_eq!((p.icmp_type, p.src, p.dst), (129, d, s));
        // The checksum covers the pseudo-header: changing an address breaks it.
        let mut bad = rep.clone();
        bad[23] ^= 1;
        assert_eq!(parse_icmp(&bad), Err(ParseError::BadIcmpChecksum));
    }

    #[test]
    fn ipv6_checksum_known_value() {
        // Echo request ::1 -> ::1, id 0, seq 0, no payload:
        // pseudo sum = 1 + 1 + 8 + 58 = 68; ICMP sum = 0x8000 -> ~(0x8044) = 0x7fbb.
        let lo = Ipv6Addr::LOCALHOST;
        let icmp = [128, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(icmpv6_checksum(&lo, &lo, &icmp), 0x7fbb);
    }

    #[test]
    fn unreachable_v4_embeds_original() {
        let req = build_echo_request(v4("198.18.0.1"), v4("198.18.0.30"), 3, 4, &[7; 32]).unwrap();
        let u = unreachable(&req, v4("198.18.0.254"), 1).unwrap();
        let p = parse_icmp(&u).unwrap();
        assert_eq!((p.icmp_type, p.icmp_code), (3, 1));
        assert_eq!(p.src, v4("198.18.0.254"));
        assert_eq!(p.dst, v4("198.18.0.1"));
        assert_eq!(p.body(), &req[..]);
        // Large requests are truncated to 576 bytes total.
        let big =
            build_echo_request(v4("198.18.0.1"), v4("198.18.0.30"), 3, 4, &[7; 1400]).unwrap();
        let u = unreachable(&big, v4("198.18.0.254"), 1).unwrap();
        assert_eq!(u.len(), 576);
        assert!(parse_icmp(&u).is_ok());
    }

    #[test]
    fn errors_of_every_kind_quote_the_request_as_the_router_saw_it() {
        use IcmpErrorKind::*;
        for (src, dst, router) in [
            ("198.18.0.1", "198.19.8.8", "198.19.0.1"),
            ("2001:db8::1", "2001:db8:8000::8", "2001:db8:8000::1"),
        ] {
            let v6 = src.contains(':');
            let mut req = build_echo_request(v4(src), v4(dst), 5, 6, &[1; 24]).unwrap();
            // As a prober would send it with TTL 3 (the IPv4 header checksum redone).
            if v6 {
                req[7] = 3;
            } else {
                req[8] = 3;
                req[10..12].copy_from_slice(&[0, 0]);
                let c = checksum(&req[..20]);
                req[10..12].copy_from_slice(&c.to_be_bytes());
            }
            assert_eq!(parse_echo_request(&req).unwrap().ttl, 3);
            for (kind, want) in [
                (HostUnreachable, if v6 { (1, 3) } else { (3, 1) }),
                (NetUnreachable, if v6 { (1, 0) } else { (3, 0) }),
                (AdminProhibited, if v6 { (1, 1) } else { (3, 13) }),
                (TtlExceeded, if v6 { (3, 0) } else { (11, 0) }),
            ] {
                let e = icmp_error(&req, v4(router), kind, 9, 62, Some(1)).unwrap();
                let p = parse_icmp(&e).unwrap();
                assert_eq!((p.icmp_type, p.icmp_code), want, "{kind:?} {dst}");
                assert_eq!((p.src, p.dst), (v4(router), v4(src)));
                assert_eq!(e[if v6 { 7 } else { 8 }], 62, "the error's own TTL");
                let quote = p.body();
                assert_eq!(quote.len(), req.len());
                // The quote is the request with the TTL it reached the router with.
                let q_ttl = if v6 { quote[7] } else { quote[8] };
                assert_eq!(q_ttl, 1);
                if !v6 {
                    assert_eq!(checksum(&quote[..20]), 0, "quoted header checksum");
                }
                let hdr = if v6 { 40 } else { 20 };
                assert_eq!(quote[hdr..], req[hdr..]);
            }
        }
        let req = build_echo_request(v4("198.18.0.1"), v4("198.19.8.8"), 1, 2, b"x").unwrap();
        let r = echo_reply_ttl(&req, 1, 60).unwrap();
        assert_eq!(r[8], 60);
        assert_eq!(checksum(&r[..20]), 0);
    }

    #[test]
    fn unreachable_v6_embeds_original() {
        let req =
            build_echo_request(v4("2001:db8::1"), v4("2001:db8::30"), 3, 4, &[7; 32]).unwrap();
        let u = unreachable(&req, v4("2001:db8::fe"), 0).unwrap();
        let p = parse_icmp(&u).unwrap();
        assert_eq!((p.icmp_type, p.icmp_code), (1, 3));
        assert_eq!(p.src, v4("2001:db8::fe"));
        assert_eq!(p.body(), &req[..]);
        let big =
            build_echo_request(v4("2001:db8::1"), v4("2001:db8::30"), 3, 4, &[7; 1400]).unwrap();
        let u = unreachable(&big, v4("2001:db8::fe"), 0).unwrap();
        assert_eq!(u.len(), 1280);
        // Family mismatch is an error, not a panic.
        assert!(unreachable(&req, v4("198.18.0.254"), 0).is_err());
    }

    #[test]
    fn malformed_rejected() {
        assert_eq!(parse_icmp(&[]), Err(ParseError::Truncated));
        assert_eq!(parse_icmp(&[0x55]), Err(ParseError::BadVersion(5)));
        assert_eq!(parse_icmp(&[0x45; 10]), Err(ParseError::Truncated));
        let mut req = build_echo_request(v4("198.18.0.1"), v4("198.18.0.10"), 1, 1, b"x").unwrap();
        req[2] = 0xff; // total length larger than the buffer
        assert_eq!(parse_icmp(&req), Err(ParseError::BadLength));
        let mut req = build_echo_request(v4("198.18.0.1"), v4("198.18.0.10"), 1, 1, b"x").unwrap();
        req[0] = 0x44; // IHL 16 bytes
        assert_eq!(parse_icmp(&req), Err(ParseError::BadHeaderLength));
        let req6 = build_echo_request(v4("2001:db8::1"), v4("2001:db8::2"), 1, 1, b"x").unwrap();
        assert_eq!(parse_icmp(&req6[..45]), Err(ParseError::BadLength));
        let mut udp6 = req6.clone();
        udp6[6] = 17;
        assert_eq!(parse_icmp(&udp6), Err(ParseError::NotIcmp(17)));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_icmp(&data);
            let _ = parse_echo_request(&data);
            let _ = echo_reply(&data, 0);
            let _ = unreachable(&data, "198.18.0.254".parse().unwrap(), 0);
            let _ = unreachable(&data, "2001:db8::fe".parse().unwrap(), 0);
        }

        #[test]
        fn mutated_requests_never_panic(idx in 0usize..64, val in any::<u8>(), v6 in any::<bool>(), cut in 0usize..70) {
            let (s, d) = if v6 { (v4("2001:db8::1"), v4("2001:db8::9")) } else { (v4("198.18.0.1"), v4("198.18.0.9")) };
            let mut p = build_echo_request(s, d, 1, 2, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
            let n = p.len();
            p[idx % n] = val;
            p.truncate(cut.min(n));
            if let Ok(r) = echo_reply(&p, 0) {
                prop_assert!(parse_icmp(&r).is_ok());
            }
            let _ = unreachable(&p, if v6 { v4("2001:db8::fe") } else { v4("198.18.0.254") }, 0);
        }

        #[test]
        fn replies_always_valid(payload in proptest::collection::vec(any::<u8>(), 0..1500), id in any::<u16>(), seq in any::<u16>(), v6 in any::<bool>()) {
            let (s, d) = if v6 { (v4("2001:db8::1"), v4("2001:db8::9")) } else { (v4("198.18.0.1"), v4("198.18.0.9")) };
            let req = build_echo_request(s, d, id, seq, &payload).unwrap();
            let rep = echo_reply(&req, 0).unwrap();
            let p = parse_icmp(&rep).unwrap();
            prop_assert_eq!((p.ident(), p.seq()), (id, seq));
            prop_assert_eq!(p.body(), &payload[..]);
        }
    }
}
