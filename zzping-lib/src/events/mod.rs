//! Context events: what happened on this machine around the pings (a link going down, a
//! default route changing, a suspend, a clock step, the daemon starting, stopping or
//! reloading), recorded next to the frames so an outage can be explained later, offline,
//! from the files alone.
//!
//! ```text
//! <data_dir>/@events/YYYY-MM-DD.zze     the events of one UTC day
//! ```
//!
//! The directory's name ([`EVENTS_DIR`]) can never be a host's: host directory names
//! are made of `[A-Za-z0-9._-]` only ([`crate::store::layout::host_dir_name`]), and
//! readers listing hosts skip it. A file is plain MessagePack, append-only like the frame
//! files: each writer start (and each recovery from a failed write) begins a *segment*, a
//! header map (`schema` `zzping-events` first, `version`, `created_us`, `writer`), then one
//! map per event with at least `t_us` (wall clock, µs since the epoch) and `kind`, and
//! the keys of its kind ([`ContextEvent`]; `docs/format.md` §10 has the table and a worked
//! example). Readers ignore keys they do not know and keep events of kinds they do not
//! know ([`EventKind::Other`]).
//!
//! - [`EventWriter`]: a bounded buffer, written with the frames (the daemon's flush); a
//!   failed write keeps the events for the next flush, up to [`MAX_PENDING_BYTES`].
//! - [`EventReader`]: one file, streaming and recovering (torn tails and garbage are
//!   reported with their offset, every good event is kept);
//! - [`read_range`]: every event of a time range across the day files, in time order.

mod reader;
mod writer;

#[cfg(test)]
mod tests;

pub use reader::{EventLog, EventReader, event_files, locate, read_range};
pub use writer::EventWriter;

use crate::msgpack::{self, Cursor};
use serde::Serialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Name of the events directory in a data directory (never a host directory's name: `@`
/// is escaped in those).
pub const EVENTS_DIR: &str = "@events";
/// Extension of event day files.
pub const EVENTS_FILE_EXT: &str = "zze";
/// Schema name in every events segment header.
pub const SCHEMA: &str = "zzping-events";
/// Current version of the events format. Readers refuse segments of a higher version.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes that follow the map marker at the start of every events segment header:
/// fixstr(6) `schema`, fixstr(13) `zzping-events`.
pub const SEGMENT_MAGIC: &[u8] = b"\xa6schema\xadzzping-events";
/// Largest value (header or event) a reader accepts, bytes.
pub const MAX_VALUE_LEN: usize = 64 * 1024;
/// A writer buffer that cannot be written grows to at most this many bytes; beyond it the
/// buffered events are dropped (and counted) and a new segment starts.
pub const MAX_PENDING_BYTES: usize = 1024 * 1024;
/// Longest text (kind, interface, reason, applied, host) of an event encoded with
/// [`ContextEvent::encode_capped`] for the live stream, bytes.
pub const MAX_CAPPED_TEXT: usize = 160;
/// Largest map [`ContextEvent::encode_capped`] writes with [`MAX_CAPPED_TEXT`], bytes:
/// five texts of at most 160 bytes with their headers (810), three addresses of at most
/// 45 (141), the key names and numbers (143), rounded up. An `EVENTS` datagram of one
/// such event stays within the live stream's 1,200 bytes.
pub const MAX_CAPPED_EVENT_BYTES: usize = 1100;
/// Longest textual IP address (an IPv4-mapped IPv6 address with every group), bytes.
const ADDR_TEXT_MAX: usize = 64;

/// `a` as text in `buf`, without allocating.
fn addr_text<'a>(a: &IpAddr, buf: &'a mut [u8; ADDR_TEXT_MAX]) -> &'a str {
    use std::io::Write;
    let mut c = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(c, "{a}");
    let n = c.position() as usize;
    std::str::from_utf8(&buf[..n]).unwrap_or("")
}

/// The events directory of `data_dir`.
pub fn events_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(EVENTS_DIR)
}

/// Path of the events file of `events_dir` for the UTC day containing `t_us`.
pub fn day_file(events_dir: &Path, t_us: u64) -> PathBuf {
    events_dir.join(format!("{}.{EVENTS_FILE_EXT}", crate::time::day_name(t_us)))
}

/// Start of the UTC day of an events file named `YYYY-MM-DD.zze` (µs), or `None`.
pub fn day_of_file(path: &Path) -> Option<u64> {
    if path.extension().and_then(|e| e.to_str()) != Some(EVENTS_FILE_EXT) {
        return None;
    }
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(crate::time::parse_day_name)
}

/// What happened. The keys each kind carries are in [`ContextEvent`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `link_down`: an interface carrying a default route went down (`interface`).
    LinkDown,
    /// `link_up`: it came up again (`interface`).
    LinkUp,
    /// `carrier_off`: the interface lost its carrier: cable out, Wi-Fi disassociated
    /// (`interface`).
    CarrierOff,
    /// `carrier_on`: the carrier came back (`interface`).
    CarrierOn,
    /// `route_change`: a default route was added, changed or `removed` (`family`,
    /// `gateway`, `interface`).
    RouteChange,
    /// `address_added`: an address was added to an interface (`address`, `prefix_len`,
    /// `interface`).
    AddressAdded,
    /// `address_removed`: an address was removed (same keys).
    AddressRemoved,
    /// `suspend`: the machine was suspended (`duration_us`: how much longer
    /// `CLOCK_BOOTTIME` advanced than `CLOCK_MONOTONIC`); `t_us` is when it began.
    Suspend,
    /// `clock_step`: the wall clock was stepped by `step_us` (may be negative) against
    /// the monotonic clock.
    ClockStep,
    /// `stall`: the daemon's loop ran `duration_us` late (it was not scheduled: the
    /// machine or its VM paused, the process stopped, the CPU starved; or it blocked),
    /// and the sends meanwhile were skipped (no measurement, not loss); `t_us` is when
    /// it was due.
    Stall,
    /// `daemon_start`: the daemon started recording.
    DaemonStart,
    /// `daemon_stop`: the daemon stopped (`reason`: a signal, the end of its duration, a
    /// failure).
    DaemonStop,
    /// `reload`: the configuration was read again (`applied`: what changed).
    Reload,
    /// `host_moved`: a pinged host got another address (`host`: its label, `address`,
    /// `previous`): its name resolves elsewhere now (a CDN, anycast, a renumbered
    /// device), or a discovered host (the gateway, the ISP's edge) was found at another.
    /// Its lane goes on under its label; its RTTs may change level there.
    HostMoved,
    /// A kind this reader does not know (written by a newer version): kept by name.
    Other(String),
}

impl EventKind {
    /// Every known kind.
    pub const ALL: [EventKind; 14] = [
        EventKind::LinkDown,
        EventKind::LinkUp,
        EventKind::CarrierOff,
        EventKind::CarrierOn,
        EventKind::RouteChange,
        EventKind::AddressAdded,
        EventKind::AddressRemoved,
        EventKind::Suspend,
        EventKind::ClockStep,
        EventKind::Stall,
        EventKind::DaemonStart,
        EventKind::DaemonStop,
        EventKind::Reload,
        EventKind::HostMoved,
    ];

    /// The kind's name on disk: `link_down`, `route_change`...
    pub fn name(&self) -> &str {
        match self {
            EventKind::LinkDown => "link_down",
            EventKind::LinkUp => "link_up",
            EventKind::CarrierOff => "carrier_off",
            EventKind::CarrierOn => "carrier_on",
            EventKind::RouteChange => "route_change",
            EventKind::AddressAdded => "address_added",
            EventKind::AddressRemoved => "address_removed",
            EventKind::Suspend => "suspend",
            EventKind::ClockStep => "clock_step",
            EventKind::Stall => "stall",
            EventKind::DaemonStart => "daemon_start",
            EventKind::DaemonStop => "daemon_stop",
            EventKind::Reload => "reload",
            EventKind::HostMoved => "host_moved",
            EventKind::Other(s) => s,
        }
    }

    /// The kind named `name` (an unknown name is [`EventKind::Other`]).
    pub fn from_name(name: &str) -> EventKind {
        EventKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .unwrap_or_else(|| EventKind::Other(name.to_owned()))
    }

    /// True for the kinds that say this machine lost its link: `link_down`,
    /// `carrier_off`.
    pub fn is_link_loss(&self) -> bool {
        matches!(self, EventKind::LinkDown | EventKind::CarrierOff)
    }

    /// True for the kinds that end a link loss: `link_up`, `carrier_on`.
    pub fn is_link_back(&self) -> bool {
        matches!(self, EventKind::LinkUp | EventKind::CarrierOn)
    }
}

impl Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// One context event: when, what, and the keys of its kind (absent keys are `None`).
///
/// | kind | keys |
/// |---|---|
/// | `link_down`, `link_up`, `carrier_off`, `carrier_on` | `interface` |
/// | `route_change` | `family` (4 or 6), `gateway`, `interface`, `removed` |
/// | `address_added`, `address_removed` | `address`, `prefix_len`, `interface` |
/// | `suspend` | `duration_us` |
/// | `clock_step` | `step_us` |
/// | `daemon_start` | (none) |
/// | `daemon_stop` | `reason` |
/// | `reload` | `applied` |
/// | `host_moved` | `host`, `address`, `previous` |
///
/// Built with the constructors ([`ContextEvent::link`], [`ContextEvent::route`]...),
/// which set exactly the keys of their kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContextEvent {
    /// When, wall clock µs since the epoch (for `suspend`: when it began).
    pub t_us: u64,
    /// What happened.
    pub kind: EventKind,
    /// The network interface, by name (`wlan0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// The address family of a route: 4 or 6.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<u8>,
    /// A default route's gateway (none: a route without one, e.g. point-to-point).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// An interface address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    /// Its prefix length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_len: Option<u8>,
    /// A route that was removed (not added or changed).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
    /// How long (suspend), µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<u64>,
    /// The wall-clock step, µs (negative: backwards).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_us: Option<i64>,
    /// Why the daemon stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What a reload applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<String>,
    /// The label of the host that moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The address the host had before it moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<IpAddr>,
}

/// Keys every known kind needs (a known kind without them is invalid on read).
fn required_keys(kind: &EventKind) -> &'static [&'static str] {
    match kind {
        EventKind::LinkDown | EventKind::LinkUp | EventKind::CarrierOff | EventKind::CarrierOn => {
            &["interface"]
        }
        EventKind::RouteChange => &["family"],
        EventKind::AddressAdded | EventKind::AddressRemoved => &["address"],
        EventKind::Suspend | EventKind::Stall => &["duration_us"],
        EventKind::ClockStep => &["step_us"],
        EventKind::DaemonStop => &["reason"],
        EventKind::Reload => &["applied"],
        EventKind::HostMoved => &["host", "address"],
        EventKind::DaemonStart | EventKind::Other(_) => &[],
    }
}

impl ContextEvent {
    /// An event of `kind` at `t_us` without any other key.
    pub fn new(t_us: u64, kind: EventKind) -> Self {
        Self {
            t_us,
            kind,
            interface: None,
            family: None,
            gateway: None,
            address: None,
            prefix_len: None,
            removed: false,
            duration_us: None,
            step_us: None,
            reason: None,
            applied: None,
            host: None,
            previous: None,
        }
    }

    /// A link or carrier event (`kind`: `LinkDown`, `LinkUp`, `CarrierOff`, `CarrierOn`)
    /// of `interface`.
    pub fn link(t_us: u64, kind: EventKind, interface: &str) -> Self {
        Self {
            interface: Some(interface.to_owned()),
            ..Self::new(t_us, kind)
        }
    }

    /// A default route of `family` (4 or 6) added or changed, or `removed`.
    pub fn route(
        t_us: u64,
        family: u8,
        gateway: Option<IpAddr>,
        interface: Option<&str>,
        removed: bool,
    ) -> Self {
        Self {
            family: Some(family),
            gateway,
            interface: interface.map(str::to_owned),
            removed,
            ..Self::new(t_us, EventKind::RouteChange)
        }
    }

    /// An address added to (or `removed` from) `interface`.
    pub fn address(
        t_us: u64,
        address: IpAddr,
        prefix_len: u8,
        interface: Option<&str>,
        removed: bool,
    ) -> Self {
        let kind = if removed {
            EventKind::AddressRemoved
        } else {
            EventKind::AddressAdded
        };
        Self {
            address: Some(address),
            prefix_len: Some(prefix_len),
            interface: interface.map(str::to_owned),
            ..Self::new(t_us, kind)
        }
    }

    /// A suspend that began at `t_us` and lasted `duration_us`.
    pub fn suspend(t_us: u64, duration_us: u64) -> Self {
        Self {
            duration_us: Some(duration_us),
            ..Self::new(t_us, EventKind::Suspend)
        }
    }

    /// A stall of the daemon that began at `t_us` (when its loop was due) and lasted
    /// `duration_us`.
    pub fn stall(t_us: u64, duration_us: u64) -> Self {
        Self {
            duration_us: Some(duration_us),
            ..Self::new(t_us, EventKind::Stall)
        }
    }

    /// A wall-clock step of `step_us` seen at `t_us` (the new wall clock).
    pub fn clock_step(t_us: u64, step_us: i64) -> Self {
        Self {
            step_us: Some(step_us),
            ..Self::new(t_us, EventKind::ClockStep)
        }
    }

    /// The daemon stopped, for `reason`.
    pub fn daemon_stop(t_us: u64, reason: &str) -> Self {
        Self {
            reason: Some(reason.to_owned()),
            ..Self::new(t_us, EventKind::DaemonStop)
        }
    }

    /// A reload that applied `applied`.
    pub fn reload(t_us: u64, applied: &str) -> Self {
        Self {
            applied: Some(applied.to_owned()),
            ..Self::new(t_us, EventKind::Reload)
        }
    }

    /// Host `host` is pinged at `address` from now on (it was at `previous`, if known).
    pub fn host_moved(t_us: u64, host: &str, address: IpAddr, previous: Option<IpAddr>) -> Self {
        Self {
            host: Some(host.to_owned()),
            address: Some(address),
            previous,
            ..Self::new(t_us, EventKind::HostMoved)
        }
    }

    /// When the event's span ends: `t_us + duration_us` (a suspend, a stall), else `t_us`.
    pub fn end_us(&self) -> u64 {
        self.t_us.saturating_add(self.duration_us.unwrap_or(0))
    }

    /// The event in words: "link wlan0 down", "default route (IPv4) via 198.18.0.1 on
    /// zzsim0", "suspended 12.300 s", "wall clock stepped +3600.000 s"...
    pub fn describe(&self) -> String {
        let iface = self.interface.as_deref().unwrap_or("?");
        let on = self
            .interface
            .as_deref()
            .map(|i| format!(" on {i}"))
            .unwrap_or_default();
        let secs = |us: u64| format!("{:.3} s", us as f64 / 1e6);
        match &self.kind {
            EventKind::LinkDown => format!("link {iface} down"),
            EventKind::LinkUp => format!("link {iface} up"),
            EventKind::CarrierOff => format!("carrier lost on {iface}"),
            EventKind::CarrierOn => format!("carrier back on {iface}"),
            EventKind::RouteChange => {
                let fam = match self.family {
                    Some(6) => "IPv6",
                    _ => "IPv4",
                };
                let via = self
                    .gateway
                    .map(|g| format!(" via {g}"))
                    .unwrap_or_default();
                if self.removed {
                    format!("default route ({fam}){via}{on} removed")
                } else {
                    format!("default route ({fam}){via}{on}")
                }
            }
            EventKind::AddressAdded | EventKind::AddressRemoved => {
                let a = self
                    .address
                    .map(|a| format!("{a}/{}", self.prefix_len.unwrap_or(0)))
                    .unwrap_or_else(|| "?".into());
                let what = if self.kind == EventKind::AddressAdded {
                    "added"
                } else {
                    "removed"
                };
                format!("address {a}{on} {what}")
            }
            EventKind::Suspend => format!("suspended {}", secs(self.duration_us.unwrap_or(0))),
            EventKind::Stall => format!(
                "zzping stalled for {} (no pings sent meanwhile)",
                secs(self.duration_us.unwrap_or(0))
            ),
            EventKind::ClockStep => {
                let s = self.step_us.unwrap_or(0);
                format!(
                    "wall clock stepped {}{}",
                    if s < 0 { "-" } else { "+" },
                    secs(s.unsigned_abs())
                )
            }
            EventKind::DaemonStart => "daemon started".into(),
            EventKind::DaemonStop => {
                format!("daemon stopped ({})", self.reason.as_deref().unwrap_or("?"))
            }
            EventKind::Reload => format!(
                "configuration reloaded ({})",
                self.applied.as_deref().unwrap_or("?")
            ),
            EventKind::HostMoved => {
                let to = self
                    .address
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "?".into());
                let was = self
                    .previous
                    .map(|p| format!(" (was {p})"))
                    .unwrap_or_default();
                format!(
                    "host {} now at {to}{was}",
                    self.host.as_deref().unwrap_or("?")
                )
            }
            EventKind::Other(k) => format!("{k}{on}"),
        }
    }

    /// Appends the event's MessagePack map to `out`: `t_us`, `kind`, then the keys that
    /// are present, in the order of the table above.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.encode_capped(out, usize::MAX);
    }

    /// Like [`ContextEvent::encode`], with every text (kind, interface, reason, applied,
    /// host) cut to at most `max_text` bytes (on a character boundary), so the map's size is
    /// bounded: at most [`MAX_CAPPED_EVENT_BYTES`] with `max_text` =
    /// [`MAX_CAPPED_TEXT`] (the live stream sends events so). Allocates nothing beyond
    /// what `out` grows by.
    pub fn encode_capped(&self, out: &mut Vec<u8>, max_text: usize) {
        use rmp::encode as e;
        let cut = |s: &str| -> usize {
            let mut end = s.len().min(max_text);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            end
        };
        let text = |out: &mut Vec<u8>, s: &str| {
            let _ = e::write_str(out, &s[..cut(s)]);
        };
        let n = 2
            + u32::from(self.interface.is_some())
            + u32::from(self.family.is_some())
            + u32::from(self.gateway.is_some())
            + u32::from(self.address.is_some())
            + u32::from(self.prefix_len.is_some())
            + u32::from(self.removed)
            + u32::from(self.duration_us.is_some())
            + u32::from(self.step_us.is_some())
            + u32::from(self.reason.is_some())
            + u32::from(self.applied.is_some())
            + u32::from(self.host.is_some())
            + u32::from(self.previous.is_some());
        // Writing into a Vec cannot fail.
        let _ = e::write_map_len(out, n);
        let _ = e::write_str(out, "t_us");
        let _ = e::write_uint(out, self.t_us);
        let _ = e::write_str(out, "kind");
        text(out, self.kind.name());
        if let Some(v) = &self.interface {
            let _ = e::write_str(out, "interface");
            text(out, v);
        }
        if let Some(v) = self.family {
            let _ = e::write_str(out, "family");
            let _ = e::write_uint(out, u64::from(v));
        }
        let mut addr = [0u8; ADDR_TEXT_MAX];
        if let Some(v) = self.gateway {
            let _ = e::write_str(out, "gateway");
            let _ = e::write_str(out, addr_text(&v, &mut addr));
        }
        if let Some(v) = self.address {
            let _ = e::write_str(out, "address");
            let _ = e::write_str(out, addr_text(&v, &mut addr));
        }
        if let Some(v) = self.prefix_len {
            let _ = e::write_str(out, "prefix_len");
            let _ = e::write_uint(out, u64::from(v));
        }
        if self.removed {
            let _ = e::write_str(out, "removed");
            let _ = e::write_bool(out, true);
        }
        if let Some(v) = self.duration_us {
            let _ = e::write_str(out, "duration_us");
            let _ = e::write_uint(out, v);
        }
        if let Some(v) = self.step_us {
            let _ = e::write_str(out, "step_us");
            let _ = e::write_sint(out, v);
        }
        if let Some(v) = &self.reason {
            let _ = e::write_str(out, "reason");
            text(out, v);
        }
        if let Some(v) = &self.applied {
            let _ = e::write_str(out, "applied");
            text(out, v);
        }
        if let Some(v) = &self.host {
            let _ = e::write_str(out, "host");
            text(out, v);
        }
        if let Some(v) = self.previous {
            let _ = e::write_str(out, "previous");
            let _ = e::write_str(out, addr_text(&v, &mut addr));
        }
    }

    /// Decodes an event map from the start of `buf`; returns it and its length. Unknown
    /// keys are skipped; a known kind without its keys, or a key of the wrong type, is
    /// invalid.
    pub fn decode(buf: &[u8]) -> Result<(ContextEvent, usize), msgpack::Error> {
        let mut c = Cursor::new(buf);
        let n = c.map_len()?;
        let mut ev = ContextEvent::new(0, EventKind::DaemonStart);
        let (mut t, mut kind) = (None, None);
        let mut seen: Vec<&str> = Vec::new();
        for _ in 0..n {
            let at = c.pos();
            let key = c.str()?;
            let bad = |what| msgpack::Error::Invalid { offset: at, what };
            match key {
                "t_us" => t = Some(c.u64()?),
                "kind" => kind = Some(EventKind::from_name(c.str()?)),
                "interface" => ev.interface = Some(c.str()?.to_owned()),
                "family" => {
                    let f = c.u64()?;
                    if f != 4 && f != 6 {
                        return Err(bad("family is not 4 or 6"));
                    }
                    ev.family = Some(f as u8);
                }
                "gateway" => {
                    ev.gateway = Some(
                        c.str()?
                            .parse()
                            .map_err(|_| bad("gateway: not an IP address"))?,
                    )
                }
                "address" => {
                    ev.address = Some(
                        c.str()?
                            .parse()
                            .map_err(|_| bad("address: not an IP address"))?,
                    )
                }
                "prefix_len" => {
                    let p = c.u64()?;
                    if p > 128 {
                        return Err(bad("prefix_len above 128"));
                    }
                    ev.prefix_len = Some(p as u8);
                }
                "removed" => ev.removed = c.bool()?,
                "duration_us" => ev.duration_us = Some(c.u64()?),
                "step_us" => ev.step_us = Some(c.i64()?),
                "reason" => ev.reason = Some(c.str()?.to_owned()),
                "applied" => ev.applied = Some(c.str()?.to_owned()),
                "host" => ev.host = Some(c.str()?.to_owned()),
                "previous" => {
                    ev.previous = Some(
                        c.str()?
                            .parse()
                            .map_err(|_| bad("previous: not an IP address"))?,
                    )
                }
                _ => {
                    c.skip(8)?;
                    continue;
                }
            }
            if seen.contains(&key) {
                return Err(bad("a key given twice"));
            }
            seen.push(key);
        }
        let (Some(t), Some(kind)) = (t, kind) else {
            return Err(msgpack::Error::Invalid {
                offset: 0,
                what: "an event needs t_us and kind",
            });
        };
        if let Some(k) = required_keys(&kind).iter().find(|k| !seen.contains(k)) {
            return Err(msgpack::Error::Invalid {
                offset: 0,
                what: match (&kind, *k) {
                    (_, "interface") => "this kind of event needs an interface",
                    (_, "family") => "a route_change needs a family",
                    (EventKind::HostMoved, "host") => "a host_moved needs host",
                    (EventKind::HostMoved, _) => "a host_moved needs address",
                    (_, "address") => "an address event needs an address",
                    (_, "duration_us") => "a suspend needs duration_us",
                    (_, "step_us") => "a clock_step needs step_us",
                    (_, "reason") => "a daemon_stop needs a reason",
                    _ => "a reload needs applied",
                },
            });
        }
        ev.t_us = t;
        ev.kind = kind;
        Ok((ev, c.pos()))
    }
}

/// The header at the start of every events segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventsHeader {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Format version, [`FORMAT_VERSION`] when written by this library.
    pub version: u32,
    /// When the segment was written, µs since the epoch.
    pub created_us: u64,
    /// Program and version that wrote it.
    pub writer: String,
}

impl EventsHeader {
    /// A header of this library's version.
    pub fn new(created_us: u64, writer: &str) -> Self {
        Self {
            schema: SCHEMA.into(),
            version: FORMAT_VERSION,
            created_us,
            writer: writer.into(),
        }
    }

    /// Appends the header's MessagePack map to `out` (`schema` first).
    pub fn encode(&self, out: &mut Vec<u8>) {
        use rmp::encode as e;
        let _ = e::write_map_len(out, 4);
        let _ = e::write_str(out, "schema");
        let _ = e::write_str(out, &self.schema);
        let _ = e::write_str(out, "version");
        let _ = e::write_uint(out, u64::from(self.version));
        let _ = e::write_str(out, "created_us");
        let _ = e::write_uint(out, self.created_us);
        let _ = e::write_str(out, "writer");
        let _ = e::write_str(out, &self.writer);
    }

    /// Decodes a header from the start of `buf`; returns it and its length. The schema
    /// must be the first key and [`SCHEMA`]; a version above [`FORMAT_VERSION`] is
    /// refused; unknown keys are skipped.
    pub fn decode(buf: &[u8]) -> Result<(EventsHeader, usize), msgpack::Error> {
        let mut c = Cursor::new(buf);
        let n = c.map_len()?;
        let mut h = EventsHeader::new(0, "");
        h.schema.clear();
        h.version = 0;
        for i in 0..n {
            let at = c.pos();
            let key = c.str()?;
            let bad = |what| msgpack::Error::Invalid { offset: at, what };
            match key {
                "schema" if i == 0 => {
                    if c.str()? != SCHEMA {
                        return Err(bad("schema is not zzping-events"));
                    }
                    h.schema = SCHEMA.into();
                }
                _ if i == 0 => return Err(bad("the first key of a header must be schema")),
                "version" => {
                    let v = c.u64()?;
                    if v == 0 || v > u64::from(FORMAT_VERSION) {
                        return Err(bad(
                            "events format version not supported (this reader knows 1)",
                        ));
                    }
                    h.version = v as u32;
                }
                "created_us" => h.created_us = c.u64()?,
                "writer" => h.writer = c.str()?.to_owned(),
                _ => c.skip(8)?,
            }
        }
        if h.schema.is_empty() || h.version == 0 {
            return Err(msgpack::Error::Invalid {
                offset: 0,
                what: "a header needs schema and version",
            });
        }
        Ok((h, c.pos()))
    }
}
