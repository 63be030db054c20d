//! Wire format of the live protocol: a tiny MessagePack writer and a bounds-checked
//! reader, the message type numbers, and the MAC / cookie helpers.
//!
//! Every datagram is one MessagePack array `[version, type, ...fields]`; see
//! `docs/live-protocol.md` for the byte layout of each message. Nothing here allocates
//! except where a caller asks for owned strings, and nothing panics on any input.

use crate::msgpack;
use std::net::SocketAddr;

/// Protocol version carried as the first element of every message. Version 2 carried
/// frames of file format version 2 (error kinds and router, see [`crate::codec`]);
/// version 3 adds the sequenced `EVENTS` message ([`T_EVENTS`]). A peer ignores (and
/// counts) messages of any other version.
pub const VERSION: u64 = 3;

/// Client -> server: subscribe (first without, then with a cookie).
pub const T_SUBSCRIBE: u64 = 1;
/// Client -> server: heartbeat renewing a subscription.
pub const T_HEARTBEAT: u64 = 2;
/// Client -> server: resend a range of sequence numbers.
pub const T_RESEND: u64 = 3;
/// Client -> server: end a subscription.
pub const T_UNSUBSCRIBE: u64 = 4;

/// Server -> client: stateless cookie, repeat the subscribe with it.
pub const T_COOKIE: u64 = 16;
/// Server -> client: the subscription is accepted.
pub const T_WELCOME: u64 = 17;
/// Server -> client (sequenced): host metadata.
pub const T_HOST: u64 = 18;
/// Server -> client (sequenced): a host was removed.
pub const T_HOST_GONE: u64 = 19;
/// Server -> client (sequenced): frames.
pub const T_FRAMES: u64 = 20;
/// Server -> client: a resend was asked for datagrams no longer kept.
pub const T_UNAVAILABLE: u64 = 21;
/// Server -> client: heartbeat acknowledgement with the next sequence number.
pub const T_ACK: u64 = 22;
/// Server -> client: the token is unknown here (expired, server restarted): resubscribe.
pub const T_UNKNOWN: u64 = 23;
/// Server -> client: the subscribe was refused (e.g. too many subscribers).
pub const T_REFUSED: u64 = 24;

/// Server -> client (sequenced): context events (`crate::events::ContextEvent` maps).
pub const T_EVENTS: u64 = 25;

/// Length of the subscribe nonce.
pub const NONCE_LEN: usize = 16;
/// Length of a cookie.
pub const COOKIE_LEN: usize = 16;
/// Length of a MAC (BLAKE3 keyed hash, untruncated).
pub const MAC_LEN: usize = 32;

/// Why a message could not be read (the datagram is only counted, so the cursor's offset
/// and reason are dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

impl From<msgpack::Error> for Malformed {
    #[inline]
    fn from(_: msgpack::Error) -> Self {
        Malformed
    }
}

pub(crate) type R<T> = Result<T, Malformed>;

/// The MessagePack reader of datagrams.
pub(crate) type Rd<'a> = msgpack::Cursor<'a>;

/// Most nesting of unknown values skipped in a datagram.
pub(crate) const MAX_SKIP_DEPTH: u32 = 8;

// ---- writer -------------------------------------------------------------------------

pub(crate) fn w_array(out: &mut Vec<u8>, n: usize) {
    if n < 16 {
        out.push(0x90 | n as u8);
    } else {
        out.push(0xdc);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    }
}

pub(crate) fn w_uint(out: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        out.push(v as u8);
    } else if v <= 0xff {
        out.extend_from_slice(&[0xcc, v as u8]);
    } else if v <= 0xffff {
        out.push(0xcd);
        out.extend_from_slice(&(v as u16).to_be_bytes());
    } else if v <= 0xffff_ffff {
        out.push(0xce);
        out.extend_from_slice(&(v as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

pub(crate) fn w_f64(out: &mut Vec<u8>, v: f64) {
    out.push(0xcb);
    out.extend_from_slice(&v.to_bits().to_be_bytes());
}

pub(crate) fn w_nil(out: &mut Vec<u8>) {
    out.push(0xc0);
}

pub(crate) fn w_bin(out: &mut Vec<u8>, b: &[u8]) {
    if b.len() <= 0xff {
        out.extend_from_slice(&[0xc4, b.len() as u8]);
    } else if b.len() <= 0xffff {
        out.push(0xc5);
        out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    } else {
        out.push(0xc6);
        out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    }
    out.extend_from_slice(b);
}

pub(crate) fn w_str(out: &mut Vec<u8>, s: &str) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[0xd9, n as u8]);
    } else {
        out.push(0xda);
        out.extend_from_slice(&(n.min(0xffff) as u16).to_be_bytes());
    }
    out.extend_from_slice(&s.as_bytes()[..n.min(0xffff)]);
}

/// Writes `[VERSION, ty` as the start of an array of `n` elements (including those two).
pub(crate) fn w_head(out: &mut Vec<u8>, n: usize, ty: u64) {
    w_array(out, n);
    w_uint(out, VERSION);
    w_uint(out, ty);
}

// ---- crypto helpers -----------------------------------------------------------------

/// The MAC of `msg` under `secret`.
pub(crate) fn mac(secret: &[u8; 32], msg: &[u8]) -> [u8; MAC_LEN] {
    *blake3::keyed_hash(secret, msg).as_bytes()
}

/// Constant-time check of `tag` against the MAC of `msg`.
pub(crate) fn mac_ok(secret: &[u8; 32], msg: &[u8], tag: &[u8]) -> bool {
    let Ok(tag) = <[u8; MAC_LEN]>::try_from(tag) else {
        return false;
    };
    blake3::keyed_hash(secret, msg) == blake3::Hash::from_bytes(tag)
}

/// Appends the final MAC element: `bin(32)` of the MAC of everything before it, or an
/// empty `bin` without a secret.
pub(crate) fn w_mac(out: &mut Vec<u8>, secret: Option<&[u8; 32]>) {
    match secret {
        Some(k) => {
            let m = mac(k, out);
            w_bin(out, &m);
        }
        None => w_bin(out, &[]),
    }
}

/// The cookie for `addr` and `client_id` in time bucket `bucket`.
pub(crate) fn cookie(key: &[u8; 32], addr: SocketAddr, client_id: u64, bucket: u64) -> [u8; 16] {
    let mut h = blake3::Hasher::new_keyed(key);
    match addr {
        SocketAddr::V4(a) => {
            h.update(&[4]);
            h.update(&a.ip().octets());
        }
        SocketAddr::V6(a) => {
            h.update(&[6]);
            h.update(&a.ip().octets());
        }
    }
    h.update(&addr.port().to_be_bytes());
    h.update(&client_id.to_be_bytes());
    h.update(&bucket.to_be_bytes());
    let mut c = [0u8; COOKIE_LEN];
    c.copy_from_slice(&h.finalize().as_bytes()[..COOKIE_LEN]);
    c
}

/// A keyed pseudo-random generator (BLAKE3 in counter mode) seeded from the OS.
pub(crate) struct Rng {
    key: [u8; 32],
    ctr: u64,
}

impl Rng {
    pub(crate) fn from_os() -> Result<Self, getrandom::Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(Self { key, ctr: 0 })
    }

    pub(crate) fn bytes32(&mut self) -> [u8; 32] {
        self.ctr += 1;
        *blake3::keyed_hash(&self.key, &self.ctr.to_le_bytes()).as_bytes()
    }

    pub(crate) fn u64(&mut self) -> u64 {
        let b = self.bytes32();
        u64::from_le_bytes(b[..8].try_into().unwrap_or([1; 8])).max(1)
    }
}

// ---- client messages (parsed by the server) ------------------------------------------

/// Header of any message: version, type, and a reader positioned after them; `n` is the
/// number of remaining elements.
pub(crate) fn head(buf: &[u8]) -> R<(u64, u64, usize, Rd<'_>)> {
    let mut r = Rd::new(buf);
    let n = r.array_len()?;
    if n < 2 {
        return Err(Malformed);
    }
    let v = r.u64()?;
    let t = r.u64()?;
    Ok((v, t, n - 2, r))
}

/// Skips `extra` unknown trailing fields, then reads the final MAC element; returns the
/// MAC bytes and the offset at which the MAC element starts.
pub(crate) fn tail_mac<'a>(r: &mut Rd<'a>, extra: usize) -> R<(&'a [u8], usize)> {
    for _ in 0..extra {
        r.skip(MAX_SKIP_DEPTH)?;
    }
    let at = r.pos();
    let m = r.bin()?;
    if !(m.is_empty() || m.len() == MAC_LEN) || !r.at_end() {
        return Err(Malformed);
    }
    Ok((m, at))
}

/// A parsed subscribe.
pub(crate) struct Subscribe<'a> {
    pub client_id: u64,
    pub ts_us: u64,
    pub nonce: [u8; NONCE_LEN],
    pub prefill_s: u32,
    /// Reader positioned on the filter (nil or array of strings) and its label count.
    pub filter: Option<(Rd<'a>, usize)>,
    pub cookie: Option<[u8; COOKIE_LEN]>,
    pub mac: &'a [u8],
    pub mac_at: usize,
}

/// Most labels in a filter.
pub const MAX_FILTER_LABELS: usize = 64;
/// Fields of a subscribe after version and type: client_id, ts, nonce, prefill, filter,
/// cookie, pad, mac.
const SUBSCRIBE_FIELDS: usize = 8;

pub(crate) fn parse_subscribe(mut r: Rd<'_>, n: usize) -> R<Subscribe<'_>> {
    if n < SUBSCRIBE_FIELDS {
        return Err(Malformed);
    }
    let client_id = r.u64()?;
    let ts_us = r.u64()?;
    let nonce: [u8; NONCE_LEN] = r.bin()?.try_into().map_err(|_| Malformed)?;
    let prefill_s = r.u32()?;
    let filter = if r.nil()? {
        None
    } else {
        let save = r.clone();
        let k = r.array_len()?;
        if k > MAX_FILTER_LABELS {
            return Err(Malformed);
        }
        for _ in 0..k {
            let s = r.str()?;
            if s.len() > 255 {
                return Err(Malformed);
            }
        }
        Some((save, k))
    };
    let c = r.bin()?;
    let cookie = match c.len() {
        0 => None,
        COOKIE_LEN => Some(c.try_into().map_err(|_| Malformed)?),
        _ => return Err(Malformed),
    };
    let _pad = r.bin()?;
    let (mac, mac_at) = tail_mac(&mut r, n - SUBSCRIBE_FIELDS)?;
    Ok(Subscribe {
        client_id,
        ts_us,
        nonce,
        prefill_s,
        filter,
        cookie,
        mac,
        mac_at,
    })
}

/// Encodes a subscribe, padded to at least `min_len` bytes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_subscribe(
    out: &mut Vec<u8>,
    client_id: u64,
    ts_us: u64,
    nonce: &[u8; NONCE_LEN],
    prefill_s: u32,
    filter: Option<&[String]>,
    cookie: Option<&[u8; COOKIE_LEN]>,
    secret: Option<&[u8; 32]>,
    min_len: usize,
) {
    out.clear();
    w_head(out, 2 + SUBSCRIBE_FIELDS, T_SUBSCRIBE);
    w_uint(out, client_id);
    w_uint(out, ts_us);
    w_bin(out, nonce);
    w_uint(out, u64::from(prefill_s));
    match filter {
        None => w_nil(out),
        Some(f) => {
            let f = &f[..f.len().min(MAX_FILTER_LABELS)];
            w_array(out, f.len());
            for l in f {
                let mut end = l.len().min(255);
                while !l.is_char_boundary(end) {
                    end -= 1;
                }
                w_str(out, &l[..end]);
            }
        }
    }
    w_bin(out, cookie.map_or(&[][..], |c| &c[..]));
    let mac_len = 2 + if secret.is_some() { MAC_LEN } else { 0 };
    // pad: bin8 header (2 bytes) + zeros so the whole message reaches min_len.
    let so_far = out.len() + 2 + mac_len;
    let pad = min_len.saturating_sub(so_far).min(255);
    out.extend_from_slice(&[0xc4, pad as u8]);
    out.resize(out.len() + pad, 0);
    w_mac(out, secret);
}

/// A parsed heartbeat, resend or unsubscribe: `[v, t, token, a, b, mac]`.
pub(crate) struct Control<'a> {
    pub token: u64,
    pub a: u64,
    pub b: u64,
    pub mac: &'a [u8],
    pub mac_at: usize,
}

/// Heartbeat: a = timestamp µs, b = need_meta (0/1). Resend: a = first seq, b = count.
/// Unsubscribe: a = b = 0.
pub(crate) fn parse_control(mut r: Rd<'_>, n: usize) -> R<Control<'_>> {
    if n < 4 {
        return Err(Malformed);
    }
    let token = r.u64()?;
    let a = r.u64()?;
    let b = r.u64()?;
    let (mac, mac_at) = tail_mac(&mut r, n - 4)?;
    Ok(Control {
        token,
        a,
        b,
        mac,
        mac_at,
    })
}

pub(crate) fn write_control(
    out: &mut Vec<u8>,
    ty: u64,
    token: u64,
    a: u64,
    b: u64,
    secret: Option<&[u8; 32]>,
) {
    out.clear();
    w_head(out, 6, ty);
    w_uint(out, token);
    w_uint(out, a);
    w_uint(out, b);
    w_mac(out, secret);
}
