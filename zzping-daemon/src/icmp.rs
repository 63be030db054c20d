//! ICMP and ICMPv6 echo wire format: pure, zero-copy, never panics.
//!
//! In the smoltcp style: [`Packet`] is a view over a byte buffer, [`Packet::new_checked`]
//! validates the length once and the accessors then read fixed offsets. [`parse_v4`] and
//! [`parse_v6`] classify a received ICMP message (without any IP header) into what the
//! daemon cares about: echo replies and the errors that quote one of our echo requests.
//!
//! Our echo requests carry a 16-byte payload: an 8-byte big-endian *token* (the request's
//! full 64-bit sequence number, so a reply to an old request whose 16-bit sequence number
//! was since reused is never mistaken for a new one) followed by [`MAGIC`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

/// ICMPv4 echo reply.
pub const V4_ECHO_REPLY: u8 = 0;
/// ICMPv4 destination unreachable.
pub const V4_DEST_UNREACH: u8 = 3;
/// ICMPv4 echo request.
pub const V4_ECHO_REQUEST: u8 = 8;
/// ICMPv4 time exceeded.
pub const V4_TIME_EXCEEDED: u8 = 11;
/// ICMPv6 destination unreachable.
pub const V6_DEST_UNREACH: u8 = 1;
/// ICMPv6 packet too big.
pub const V6_PACKET_TOO_BIG: u8 = 2;
/// ICMPv6 time exceeded.
pub const V6_TIME_EXCEEDED: u8 = 3;
/// ICMPv6 echo request.
pub const V6_ECHO_REQUEST: u8 = 128;
/// ICMPv6 echo reply.
pub const V6_ECHO_REPLY: u8 = 129;

/// Length of the ICMP echo header.
pub const HEADER_LEN: usize = 8;
/// Length of our echo payload (token + magic).
pub const PAYLOAD_LEN: usize = 16;
/// Length of the echo requests we send.
pub const PACKET_LEN: usize = HEADER_LEN + PAYLOAD_LEN;
/// Marks our payloads.
pub const MAGIC: [u8; 8] = *b"zzping\x00\x01";

/// A buffer could not be parsed or written.
#[derive(Debug, Error, PartialEq, Eq, Clone, Copy)]
pub enum WireError {
    /// The buffer is shorter than the structure it should hold.
    #[error("buffer too short")]
    Truncated,
    /// A header field has an impossible value.
    #[error("malformed header")]
    Malformed,
}

/// IP version of a socket or packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 / ICMP.
    V4,
    /// IPv6 / ICMPv6.
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The unspecified address of this family (`0.0.0.0` or `::`).
    pub fn unspecified(self) -> IpAddr {
        match self {
            Family::V4 => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            Family::V6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        }
    }

    /// 0 for V4, 1 for V6 (for arrays indexed by family).
    pub fn index(self) -> usize {
        match self {
            Family::V4 => 0,
            Family::V6 => 1,
        }
    }

    /// The echo request type of this family.
    pub fn echo_request(self) -> u8 {
        match self {
            Family::V4 => V4_ECHO_REQUEST,
            Family::V6 => V6_ECHO_REQUEST,
        }
    }
}

/// Zero-copy view over an ICMP echo (request or reply) message.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors may then return zeros (never panic).
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer holding at least the 8-byte ICMP header.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Packet { buffer })
    }

    fn byte(&self, i: usize) -> u8 {
        self.buffer.as_ref().get(i).copied().unwrap_or(0)
    }

    fn be16(&self, i: usize) -> u16 {
        u16::from_be_bytes([self.byte(i), self.byte(i + 1)])
    }

    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.byte(0)
    }

    /// Message code.
    pub fn code(&self) -> u8 {
        self.byte(1)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        self.be16(2)
    }

    /// Echo identifier.
    pub fn ident(&self) -> u16 {
        self.be16(4)
    }

    /// Echo sequence number.
    pub fn seq_no(&self) -> u16 {
        self.be16(6)
    }

    /// Everything after the 8-byte header.
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }

    /// Our token, when the payload is one of ours.
    pub fn token(&self) -> Option<u64> {
        let p = self.payload();
        if p.len() < PAYLOAD_LEN || p[8..16] != MAGIC {
            return None;
        }
        let mut t = [0u8; 8];
        t.copy_from_slice(&p[..8]);
        Some(u64::from_be_bytes(t))
    }

    /// Consumes the view.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_be16(&mut self, i: usize, v: u16) {
        if let Some(s) = self.buffer.as_mut().get_mut(i..i + 2) {
            s.copy_from_slice(&v.to_be_bytes());
        }
    }

    /// Sets the type.
    pub fn set_msg_type(&mut self, v: u8) {
        if let Some(b) = self.buffer.as_mut().get_mut(0) {
            *b = v;
        }
    }

    /// Sets the code.
    pub fn set_code(&mut self, v: u8) {
        if let Some(b) = self.buffer.as_mut().get_mut(1) {
            *b = v;
        }
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.set_be16(2, v);
    }

    /// Sets the identifier.
    pub fn set_ident(&mut self, v: u16) {
        self.set_be16(4, v);
    }

    /// Sets the sequence number.
    pub fn set_seq_no(&mut self, v: u16) {
        self.set_be16(6, v);
    }

    /// Computes and stores the Internet checksum over the whole buffer (ICMPv4).
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

/// Internet checksum (RFC 1071) of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Writes one of our echo requests into `buf` and returns its length ([`PACKET_LEN`]).
///
/// The ICMPv4 checksum is computed; the ICMPv6 one is left zero for the kernel to fill
/// (it always does for ICMPv6 sockets, raw or datagram).
pub fn emit_echo_request(
    family: Family,
    buf: &mut [u8],
    ident: u16,
    seq: u16,
    token: u64,
) -> Result<usize, WireError> {
    let buf = buf.get_mut(..PACKET_LEN).ok_or(WireError::Truncated)?;
    let mut p = Packet::new_unchecked(&mut *buf);
    p.set_msg_type(family.echo_request());
    p.set_code(0);
    p.set_checksum(0);
    p.set_ident(ident);
    p.set_seq_no(seq);
    let payload = &mut p.into_inner()[HEADER_LEN..];
    payload[..8].copy_from_slice(&token.to_be_bytes());
    payload[8..].copy_from_slice(&MAGIC);
    if family == Family::V4 {
        Packet::new_unchecked(buf).fill_checksum();
    }
    Ok(PACKET_LEN)
}

/// Strips the IPv4 header raw ICMPv4 sockets deliver; returns the ICMP message.
pub fn strip_ipv4_header(buf: &[u8]) -> Result<&[u8], WireError> {
    let first = *buf.first().ok_or(WireError::Truncated)?;
    if first >> 4 != 4 {
        return Err(WireError::Malformed);
    }
    let ihl = usize::from(first & 0x0f) * 4;
    if ihl < 20 {
        return Err(WireError::Malformed);
    }
    buf.get(ihl..).ok_or(WireError::Truncated)
}

pub use zzping_lib::frame::ErrorKind;

/// A received ICMP message, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// An echo reply.
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq: u16,
        /// Our token when the payload is ours.
        token: Option<u64>,
    },
    /// An error about one of our echo requests: an ICMP error quoting it, or this
    /// machine's own kernel reporting it could not be delivered.
    Error {
        /// Kind of error.
        kind: ErrorKind,
        /// Identifier of the quoted request.
        ident: u16,
        /// Sequence number of the quoted request.
        seq: u16,
        /// Destination of the quoted request (the host we pinged).
        orig_dst: IpAddr,
        /// Who sent the ICMP error (a router on the path, or the host), when known;
        /// `None` for errors of this machine's own kernel.
        from: Option<IpAddr>,
    },
    /// The kernel's software transmit timestamp of one of our sends (`SO_TIMESTAMPING`
    /// with `OPT_ID`, read from the error queue; the time is the reply's
    /// `kernel_real_ns`). `key` counts the socket's stamped sends from 0.
    TxStamp {
        /// The kernel's per-socket send counter.
        key: u32,
    },
    /// Anything else (echo requests, errors about other traffic, neighbour discovery...).
    Other,
}

/// Classifies an ICMPv4 message (IP header already stripped).
pub fn parse_v4(icmp: &[u8]) -> Result<Message, WireError> {
    let p = Packet::new_checked(icmp)?;
    match p.msg_type() {
        V4_ECHO_REPLY => Ok(Message::EchoReply {
            ident: p.ident(),
            seq: p.seq_no(),
            token: p.token(),
        }),
        t @ (V4_DEST_UNREACH | V4_TIME_EXCEEDED) => {
            let kind = error_kind(Family::V4, t, p.code()).unwrap_or(ErrorKind::IcmpOther);
            let orig_ip = p.payload();
            let orig_icmp = strip_ipv4_header(orig_ip)?;
            // Protocol field of the quoted header must be ICMP.
            if orig_ip.get(9) != Some(&1) {
                return Ok(Message::Other);
            }
            let dst: [u8; 4] = orig_ip
                .get(16..20)
                .and_then(|s| s.try_into().ok())
                .ok_or(WireError::Truncated)?;
            let orig = Packet::new_checked(orig_icmp)?;
            if orig.msg_type() != V4_ECHO_REQUEST {
                return Ok(Message::Other);
            }
            Ok(Message::Error {
                kind,
                ident: orig.ident(),
                seq: orig.seq_no(),
                orig_dst: IpAddr::V4(Ipv4Addr::from(dst)),
                from: None,
            })
        }
        _ => Ok(Message::Other),
    }
}

/// Length of the fixed IPv6 header.
const IPV6_HEADER_LEN: usize = 40;

/// Classifies an ICMPv6 message.
pub fn parse_v6(icmp: &[u8]) -> Result<Message, WireError> {
    let p = Packet::new_checked(icmp)?;
    match p.msg_type() {
        V6_ECHO_REPLY => Ok(Message::EchoReply {
            ident: p.ident(),
            seq: p.seq_no(),
            token: p.token(),
        }),
        t @ (V6_DEST_UNREACH | V6_TIME_EXCEEDED | V6_PACKET_TOO_BIG) => {
            let kind = error_kind(Family::V6, t, p.code()).unwrap_or(ErrorKind::IcmpOther);
            let orig_ip = p.payload();
            if orig_ip.len() < IPV6_HEADER_LEN {
                return Err(WireError::Truncated);
            }
            if orig_ip[0] >> 4 != 6 {
                return Err(WireError::Malformed);
            }
            // Next header must be ICMPv6 (we send no extension headers).
            if orig_ip[6] != 58 {
                return Ok(Message::Other);
            }
            let mut dst = [0u8; 16];
            dst.copy_from_slice(&orig_ip[24..40]);
            let orig = Packet::new_checked(&orig_ip[IPV6_HEADER_LEN..])?;
            if orig.msg_type() != V6_ECHO_REQUEST {
                return Ok(Message::Other);
            }
            Ok(Message::Error {
                kind,
                ident: orig.ident(),
                seq: orig.seq_no(),
                orig_dst: IpAddr::V6(Ipv6Addr::from(dst)),
                from: None,
            })
        }
        _ => Ok(Message::Other),
    }
}

/// Kind of an ICMP error given its type and code (RFC 792, 1812 and 4443; as in the
/// packet, or as reported by `IP_RECVERR`/`IPV6_RECVERR`); `None` for types that are not
/// errors about a packet we sent.
pub fn error_kind(family: Family, icmp_type: u8, code: u8) -> Option<ErrorKind> {
    use ErrorKind::*;
    Some(match (family, icmp_type) {
        (Family::V4, V4_DEST_UNREACH) => match code {
            // Network unreachable, unknown, unreachable for the type of service.
            0 | 6 | 11 => NetUnreachable,
            // Host unreachable, unknown, isolated, unreachable for the type of service.
            1 | 7 | 8 | 12 => HostUnreachable,
            // Protocol or port unreachable: the host itself refused.
            2 | 3 => PortUnreachable,
            // Network or host administratively prohibited, communication administratively
            // prohibited, precedence violation or cutoff.
            9 | 10 | 13..=15 => Prohibited,
            // Fragmentation needed, source route failed.
            _ => IcmpOther,
        },
        (Family::V4, V4_TIME_EXCEEDED) => match code {
            0 => TtlExceeded,
            // Fragment reassembly time exceeded.
            _ => IcmpOther,
        },
        (Family::V6, V6_DEST_UNREACH) => match code {
            // No route to destination, beyond the scope of the source address.
            0 | 2 => NetUnreachable,
            // Administratively prohibited, failed ingress/egress policy, reject route.
            1 | 5 | 6 => Prohibited,
            3 => HostUnreachable,
            4 => PortUnreachable,
            _ => IcmpOther,
        },
        (Family::V6, V6_TIME_EXCEEDED) => match code {
            0 => TtlExceeded,
            _ => IcmpOther,
        },
        (Family::V6, V6_PACKET_TOO_BIG) => IcmpOther,
        _ => return None,
    })
}

/// Kind of a failure this machine's own kernel reported for a request, by errno: a
/// `sendto` that failed, or an error queued with origin "local" (e.g. the next hop
/// never answered ARP/ND: `EHOSTUNREACH` for the packets that waited for it).
pub fn local_error_kind(errno: i32, queued: bool) -> ErrorKind {
    match errno {
        libc::EHOSTUNREACH if queued => ErrorKind::NoNeighbour,
        libc::ENETUNREACH | libc::EHOSTUNREACH => ErrorKind::NoRoute,
        libc::ENETDOWN | libc::ENODEV | libc::EADDRNOTAVAIL | libc::ENXIO => ErrorKind::NetDown,
        libc::ENOBUFS | libc::ENOMEM | libc::EAGAIN => ErrorKind::NoBuffer,
        libc::EPERM | libc::EACCES => ErrorKind::Denied,
        _ => ErrorKind::SendOther,
    }
}

/// Builds the [`Message::Error`] for an error a socket queued (`MSG_ERRQUEUE`): `quoted`
/// is our original echo request (from its ICMP header on), `orig_dst` where it was sent,
/// `kind` what the queue entry said (see [`error_kind`], [`local_error_kind`]) and `from`
/// who sent the ICMP error (`SO_EE_OFFENDER`). `Other` when the quote is not an echo
/// request of `family`.
pub fn queued_error(
    family: Family,
    kind: ErrorKind,
    quoted: &[u8],
    orig_dst: IpAddr,
    from: Option<IpAddr>,
) -> Result<Message, WireError> {
    let p = Packet::new_checked(quoted)?;
    if p.msg_type() != family.echo_request() {
        return Ok(Message::Other);
    }
    Ok(Message::Error {
        kind,
        ident: p.ident(),
        seq: p.seq_no(),
        orig_dst,
        from,
    })
}

/// Classifies a message of `family`.
pub fn parse(family: Family, icmp: &[u8]) -> Result<Message, WireError> {
    match family {
        Family::V4 => parse_v4(icmp),
        Family::V6 => parse_v6(icmp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ipv4_header(proto: u8, src: [u8; 4], dst: [u8; 4], payload_len: usize) -> Vec<u8> {
        let mut h = vec![0u8; 20];
        h[0] = 0x45;
        let total = (20 + payload_len) as u16;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[8] = 64;
        h[9] = proto;
        h[12..16].copy_from_slice(&src);
        h[16..20].copy_from_slice(&dst);
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    #[test]
    fn emit_then_parse_v4_reply() {
        let mut buf = [0u8; 64];
        let n = emit_echo_request(Family::V4, &mut buf, 0x1234, 0xfffe, 42).unwrap();
        assert_eq!(n, PACKET_LEN);
        // Checksum over the message verifies to zero.
        assert_eq!(checksum(&buf[..n]), 0);
        let p = Packet::new_checked(&buf[..n]).unwrap();
        assert_eq!(p.msg_type(), V4_ECHO_REQUEST);
        assert_eq!(p.ident(), 0x1234);
        assert_eq!(p.seq_no(), 0xfffe);
        assert_eq!(p.token(), Some(42));
        // Turn it into the reply the peer would send.
        buf[0] = V4_ECHO_REPLY;
        assert_eq!(
            parse_v4(&buf[..n]).unwrap(),
            Message::EchoReply {
                ident: 0x1234,
                seq: 0xfffe,
                token: Some(42)
            }
        );
        // An echo request (our own, seen by a raw socket on loopback) is not a reply.
        buf[0] = V4_ECHO_REQUEST;
        assert_eq!(parse_v4(&buf[..n]).unwrap(), Message::Other);
    }

    #[test]
    fn foreign_payload_has_no_token() {
        let mut buf = [0u8; PACKET_LEN];
        emit_echo_request(Family::V6, &mut buf, 1, 2, 3).unwrap();
        buf[0] = V6_ECHO_REPLY;
        buf[HEADER_LEN + 9] ^= 0xff;
        assert_eq!(
            parse_v6(&buf).unwrap(),
            Message::EchoReply {
                ident: 1,
                seq: 2,
                token: None
            }
        );
    }

    #[test]
    fn v4_raw_strip_and_unreachable() {
        let mut req = [0u8; PACKET_LEN];
        emit_echo_request(Family::V4, &mut req, 7, 9, 99).unwrap();
        let quoted_ip = ipv4_header(1, [10, 0, 0, 1], [198, 18, 0, 5], PACKET_LEN);
        let mut err = vec![V4_DEST_UNREACH, 1, 0, 0, 0, 0, 0, 0];
        err.extend_from_slice(&quoted_ip);
        err.extend_from_slice(&req[..8]);
        let outer = ipv4_header(1, [10, 0, 0, 254], [10, 0, 0, 1], err.len());
        let mut wire = outer.clone();
        wire.extend_from_slice(&err);
        let icmp = strip_ipv4_header(&wire).unwrap();
        assert_eq!(
            parse_v4(icmp).unwrap(),
            Message::Error {
                kind: ErrorKind::HostUnreachable,
                ident: 7,
                seq: 9,
                orig_dst: "198.18.0.5".parse().unwrap(),
                from: None,
            }
        );
        // Quoting a UDP packet: not ours.
        let mut err2 = vec![V4_DEST_UNREACH, 3, 0, 0, 0, 0, 0, 0];
        err2.extend_from_slice(&ipv4_header(17, [1; 4], [2; 4], 8));
        err2.extend_from_slice(&[0u8; 8]);
        assert_eq!(parse_v4(&err2).unwrap(), Message::Other);
    }

    #[test]
    fn v6_time_exceeded() {
        let mut req = [0u8; PACKET_LEN];
        emit_echo_request(Family::V6, &mut req, 5, 65535, 1).unwrap();
        let mut quoted = vec![0u8; 40];
        quoted[0] = 0x60;
        quoted[6] = 58;
        let dst: Ipv6Addr = "2001:db8::5".parse().unwrap();
        quoted[24..40].copy_from_slice(&dst.octets());
        let mut msg = vec![V6_TIME_EXCEEDED, 0, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(&quoted);
        msg.extend_from_slice(&req);
        assert_eq!(
            parse_v6(&msg).unwrap(),
            Message::Error {
                kind: ErrorKind::TtlExceeded,
                ident: 5,
                seq: 65535,
                orig_dst: IpAddr::V6(dst),
                from: None,
            }
        );
        // Truncated quote is an error, not a panic.
        assert_eq!(parse_v6(&msg[..20]), Err(WireError::Truncated));
    }

    #[test]
    fn short_and_bad_headers() {
        assert_eq!(parse_v4(&[0, 0, 0]), Err(WireError::Truncated));
        assert_eq!(strip_ipv4_header(&[]), Err(WireError::Truncated));
        assert_eq!(strip_ipv4_header(&[0x60; 40]), Err(WireError::Malformed));
        assert_eq!(strip_ipv4_header(&[0x44; 40]), Err(WireError::Malformed));
        assert_eq!(strip_ipv4_header(&[0x4f; 40]), Err(WireError::Truncated));
        let mut small = [0u8; 10];
        assert_eq!(
            emit_echo_request(Family::V4, &mut small, 0, 0, 0),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn queued_errors_from_datagram_sockets() {
        let mut req = [0u8; PACKET_LEN];
        emit_echo_request(Family::V4, &mut req, 77, 1234, 5).unwrap();
        let dst: IpAddr = "198.18.0.5".parse().unwrap();
        let router: IpAddr = "198.18.0.1".parse().unwrap();
        assert_eq!(
            queued_error(Family::V4, ErrorKind::Prohibited, &req, dst, Some(router)).unwrap(),
            Message::Error {
                kind: ErrorKind::Prohibited,
                ident: 77,
                seq: 1234,
                orig_dst: dst,
                from: Some(router),
            }
        );
        // Echo request type of the other family, short quotes.
        assert_eq!(
            queued_error(Family::V6, ErrorKind::TtlExceeded, &req, dst, None).unwrap(),
            Message::Other
        );
        assert_eq!(
            queued_error(Family::V4, ErrorKind::NoRoute, &req[..4], dst, None),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn error_kinds_by_type_and_code_and_errno() {
        use ErrorKind::*;
        let v4 = |t, c| error_kind(Family::V4, t, c);
        let v6 = |t, c| error_kind(Family::V6, t, c);
        assert_eq!(v4(V4_DEST_UNREACH, 0), Some(NetUnreachable));
        assert_eq!(v4(V4_DEST_UNREACH, 1), Some(HostUnreachable));
        assert_eq!(v4(V4_DEST_UNREACH, 3), Some(PortUnreachable));
        assert_eq!(v4(V4_DEST_UNREACH, 4), Some(IcmpOther));
        assert_eq!(v4(V4_DEST_UNREACH, 13), Some(Prohibited));
        assert_eq!(v4(V4_DEST_UNREACH, 10), Some(Prohibited));
        assert_eq!(v4(V4_TIME_EXCEEDED, 0), Some(TtlExceeded));
        assert_eq!(v4(V4_TIME_EXCEEDED, 1), Some(IcmpOther));
        assert_eq!(v4(5, 0), None);
        assert_eq!(v6(V6_DEST_UNREACH, 0), Some(NetUnreachable));
        assert_eq!(v6(V6_DEST_UNREACH, 1), Some(Prohibited));
        assert_eq!(v6(V6_DEST_UNREACH, 3), Some(HostUnreachable));
        assert_eq!(v6(V6_DEST_UNREACH, 4), Some(PortUnreachable));
        assert_eq!(v6(V6_TIME_EXCEEDED, 0), Some(TtlExceeded));
        assert_eq!(v6(V6_PACKET_TOO_BIG, 0), Some(IcmpOther));
        assert_eq!(v6(V6_ECHO_REPLY, 0), None);
        assert_eq!(local_error_kind(libc::ENETUNREACH, false), NoRoute);
        assert_eq!(local_error_kind(libc::EHOSTUNREACH, false), NoRoute);
        assert_eq!(local_error_kind(libc::EHOSTUNREACH, true), NoNeighbour);
        assert_eq!(local_error_kind(libc::ENETDOWN, false), NetDown);
        assert_eq!(local_error_kind(libc::ENOBUFS, false), NoBuffer);
        assert_eq!(local_error_kind(libc::EACCES, false), Denied);
        assert_eq!(local_error_kind(libc::EINVAL, false), SendOther);
    }

    #[test]
    fn checksum_known_value() {
        // RFC 1071 example bytes.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
        assert_eq!(checksum(&[0xff]), !0xff00);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_v4(&bytes);
            let _ = parse_v6(&bytes);
            if let Ok(icmp) = strip_ipv4_header(&bytes) {
                let _ = parse_v4(icmp);
            }
            let p = Packet::new_unchecked(&bytes[..]);
            let _ = (p.msg_type(), p.code(), p.checksum(), p.ident(), p.seq_no(), p.token());
        }

        #[test]
        fn echo_roundtrip(ident: u16, seq: u16, token: u64) {
            let mut buf = [0u8; PACKET_LEN];
            emit_echo_request(Family::V4, &mut buf, ident, seq, token).unwrap();
            prop_assert_eq!(checksum(&buf), 0);
            buf[0] = V4_ECHO_REPLY;
            prop_assert_eq!(parse_v4(&buf).unwrap(), Message::EchoReply { ident, seq, token: Some(token) });
        }
    }
}
