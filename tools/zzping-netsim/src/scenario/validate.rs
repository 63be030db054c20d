//! Validation of a parsed scenario: every name, address, path and timeline entry checked,
//! each error naming the table and field.

use super::*;

impl Scenario {
    /// Check ranges and consistency.
    pub fn validate(&self, path: &Path) -> Result<(), ScenarioError> {
        let bad = |context: &str, field: &str, message: String| ScenarioError::Invalid {
            path: path.to_path_buf(),
            context: context.to_string(),
            field: field.to_string(),
            message,
        };
        let n = &self.network;
        let net = "[network]";
        if !valid_ifname(&n.tun_name) {
            return Err(bad(
                net,
                "tun_name",
                format!(
                    "{:?} is not a valid interface name (1-15 of [A-Za-z0-9_-])",
                    n.tun_name
                ),
            ));
        }
        let mut reserved: HashMap<IpAddr, &str> = HashMap::new();
        for (field, a) in [
            ("local_v4", IpAddr::V4(n.local_v4)),
            ("local_v6", IpAddr::V6(n.local_v6)),
            ("router_v4", IpAddr::V4(n.router_v4)),
            ("router_v6", IpAddr::V6(n.router_v6)),
        ] {
            if !in_simulated_prefix(a) {
                return Err(bad(
                    net,
                    field,
                    format!("{a} is outside 198.18.0.0/15 and 2001:db8::/32"),
                ));
            }
            if let Some(other) = reserved.insert(a, field) {
                return Err(bad(net, field, format!("{a} is already used by `{other}`")));
            }
        }
        if !(PREFIX_V4_LEN..=32).contains(&n.prefix_v4_len) {
            return Err(bad(
                net,
                "prefix_v4_len",
                format!("must be in 15..=32, got {}", n.prefix_v4_len),
            ));
        }
        if !(PREFIX_V6_LEN..=128).contains(&n.prefix_v6_len) {
            return Err(bad(
                net,
                "prefix_v6_len",
                format!("must be in 32..=128, got {}", n.prefix_v6_len),
            ));
        }
        let mut if_names: HashSet<&str> = HashSet::from([n.tun_name.as_str()]);
        for (i, f) in self.interface.iter().enumerate() {
            let ctx = format!("interface {:?} (#{})", f.name, i + 1);
            if !valid_ifname(&f.name) {
                return Err(bad(
                    &ctx,
                    "name",
                    format!(
                        "{:?} is not a valid interface name (1-15 of [A-Za-z0-9_-])",
                        f.name
                    ),
                ));
            }
            if !if_names.insert(f.name.as_str()) {
                return Err(bad(&ctx, "name", format!("{:?} is used twice", f.name)));
            }
            if f.local_v4.is_none() && f.local_v6.is_none() {
                return Err(bad(
                    &ctx,
                    "local_v4",
                    "needs local_v4 or local_v6 (or both)".into(),
                ));
            }
            if !(PREFIX_V4_LEN..=32).contains(&f.prefix_v4_len) {
                return Err(bad(
                    &ctx,
                    "prefix_v4_len",
                    format!("must be in 15..=32, got {}", f.prefix_v4_len),
                ));
            }
            if !(PREFIX_V6_LEN..=128).contains(&f.prefix_v6_len) {
                return Err(bad(
                    &ctx,
                    "prefix_v6_len",
                    format!("must be in 32..=128, got {}", f.prefix_v6_len),
                ));
            }
            for (field, a) in [
                ("local_v4", f.local_v4.map(IpAddr::V4)),
                ("local_v6", f.local_v6.map(IpAddr::V6)),
            ] {
                let Some(a) = a else { continue };
                if !in_simulated_prefix(a) {
                    return Err(bad(
                        &ctx,
                        field,
                        format!("{a} is outside 198.18.0.0/15 and 2001:db8::/32"),
                    ));
                }
                if let Some(other) = reserved.insert(a, field) {
                    return Err(bad(
                        &ctx,
                        field,
                        format!("{a} is already used by `{other}`"),
                    ));
                }
            }
        }
        let ifaces = self.interfaces();
        for (i, a) in ifaces.iter().enumerate() {
            for b in &ifaces[..i] {
                let v4 = a.v4.zip(b.v4).is_some_and(|((x, m), (y, n))| {
                    prefix_v4(x, m.min(n)) == prefix_v4(y, m.min(n))
                });
                let v6 = a.v6.zip(b.v6).is_some_and(|((x, m), (y, n))| {
                    prefix_v6(x, m.min(n)) == prefix_v6(y, m.min(n))
                });
                if v4 || v6 {
                    return Err(bad(
                        &format!("interface {:?}", a.name),
                        if v4 { "local_v4" } else { "local_v6" },
                        format!(
                            "its on-link prefix overlaps that of interface {:?} (narrow [network] prefix_v4_len / prefix_v6_len)",
                            b.name
                        ),
                    ));
                }
            }
        }
        for (i, o) in self.outage.iter().enumerate() {
            let ctx = format!("outage #{}", i + 1);
            check_range(o.start_ms, 0.0, f64::MAX, "start_ms")
                .map_err(|m| bad(&ctx, "start_ms", m))?;
            check_range(o.duration_ms, 0.0, f64::MAX, "duration_ms")
                .map_err(|m| bad(&ctx, "duration_ms", m))?;
            if let Some(e) = o.every_ms {
                check_range(e, 1.0, f64::MAX, "every_ms").map_err(|m| bad(&ctx, "every_ms", m))?;
                if o.duration_ms > e {
                    return Err(bad(
                        &ctx,
                        "duration_ms",
                        format!("{} is longer than every_ms {e}", o.duration_ms),
                    ));
                }
            }
        }
        if self.host.is_empty() {
            return Err(bad("scenario", "host", "no [[host]] defined".to_string()));
        }
        let mut names = HashSet::new();
        let mut addrs: HashMap<IpAddr, String> = HashMap::new();
        for (i, h) in self.host.iter().enumerate() {
            let ctx = format!("host {:?} (#{})", h.name, i + 1);
            if h.name.trim().is_empty() {
                return Err(bad(&ctx, "name", "must not be empty".into()));
            }
            if !names.insert(h.name.as_str()) {
                return Err(bad(
                    &ctx,
                    "name",
                    format!("duplicate host name {:?}", h.name),
                ));
            }
            if h.addresses.is_empty() {
                return Err(bad(&ctx, "addresses", "needs at least one address".into()));
            }
            for a in &h.addresses {
                if !in_simulated_prefix(*a) {
                    return Err(bad(
                        &ctx,
                        "addresses",
                        format!("{a} is outside 198.18.0.0/15 and 2001:db8::/32"),
                    ));
                }
                if let Some(f) = reserved.get(a) {
                    return Err(bad(
                        &ctx,
                        "addresses",
                        format!("{a} is the simulator's own `{f}`"),
                    ));
                }
                if let Some(other) = addrs.insert(*a, h.name.clone()) {
                    return Err(bad(
                        &ctx,
                        "addresses",
                        format!("{a} is also used by host {other:?}"),
                    ));
                }
            }
            let max = HARD_MAX_DELAY_MS;
            check_range(h.rtt_ms, 0.0, max, "rtt_ms").map_err(|m| bad(&ctx, "rtt_ms", m))?;
            check_range(h.max_delay_ms, 0.0, max, "max_delay_ms")
                .map_err(|m| bad(&ctx, "max_delay_ms", m))?;
            check_range(h.loss, 0.0, 1.0, "loss").map_err(|m| bad(&ctx, "loss", m))?;
            let j = |f: &str, v: f64| {
                check_range(v, 0.0, max, f).map_err(|m| bad(&ctx, &format!("jitter.{f}"), m))
            };
            match h.jitter {
                Jitter::None => {}
                Jitter::Uniform { max_ms } => j("max_ms", max_ms)?,
                Jitter::Normal { stddev_ms } => j("stddev_ms", stddev_ms)?,
                Jitter::Exponential { mean_ms } => j("mean_ms", mean_ms)?,
                Jitter::Pareto { scale_ms, shape } => {
                    j("scale_ms", scale_ms)?;
                    if !(shape.is_finite() && shape > 0.0) {
                        return Err(bad(
                            &ctx,
                            "jitter.shape",
                            format!("must be > 0, got {shape}"),
                        ));
                    }
                }
            }
            for (k, b) in h.burst.iter().enumerate() {
                let f = |name: &str| format!("burst[{k}].{name}");
                check_range(b.every_ms, 1.0, f64::MAX, "every_ms")
                    .map_err(|m| bad(&ctx, &f("every_ms"), m))?;
                check_range(b.duration_ms, 0.0, b.every_ms, "duration_ms").map_err(|m| {
                    bad(
                        &ctx,
                        &f("duration_ms"),
                        format!("{m} (must not exceed every_ms)"),
                    )
                })?;
                check_range(b.offset_ms, 0.0, f64::MAX, "offset_ms")
                    .map_err(|m| bad(&ctx, &f("offset_ms"), m))?;
            }
            if let Some(d) = &h.duplicate {
                check_range(d.probability, 0.0, 1.0, "")
                    .map_err(|m| bad(&ctx, "duplicate.probability", m))?;
                if !(1..=16).contains(&d.copies) {
                    return Err(bad(
                        &ctx,
                        "duplicate.copies",
                        format!("must be in 1..=16, got {}", d.copies),
                    ));
                }
                check_range(d.gap_ms, 0.0, 10_000.0, "")
                    .map_err(|m| bad(&ctx, "duplicate.gap_ms", m))?;
            }
            if let Some(r) = &h.reorder {
                check_range(r.probability, 0.0, 1.0, "")
                    .map_err(|m| bad(&ctx, "reorder.probability", m))?;
                check_range(r.extra_delay_ms, 0.0, max, "")
                    .map_err(|m| bad(&ctx, "reorder.extra_delay_ms", m))?;
            }
            if let Some(r) = &h.rate_limit {
                if !(r.per_second.is_finite() && r.per_second > 0.0 && r.per_second <= 1e9) {
                    return Err(bad(
                        &ctx,
                        "rate_limit.per_second",
                        format!("must be > 0, got {}", r.per_second),
                    ));
                }
                if r.burst == Some(0) {
                    return Err(bad(&ctx, "rate_limit.burst", "must be at least 1".into()));
                }
            }
        }
        self.validate_routing(&bad)?;
        self.validate_timeline(&bad)?;
        self.validate_paths(&bad)?;
        Ok(())
    }

    /// Routers exist, paths have no cycle, routers can answer in each
    /// family of the hosts behind them, error windows are valid.
    fn validate_paths(
        &self,
        bad: &dyn Fn(&str, &str, String) -> ScenarioError,
    ) -> Result<(), ScenarioError> {
        let ctx_of = |i: usize| format!("host {:?} (#{})", self.host[i].name, i + 1);
        let resolve = |ctx: &str, field: &str, via: &Via| -> Result<Vec<usize>, ScenarioError> {
            if via.names().is_empty() {
                return Err(bad(ctx, field, "names no router".into()));
            }
            via.names()
                .iter()
                .map(|n| {
                    self.host_index(n)
                        .ok_or_else(|| bad(ctx, field, format!("no host is named {n:?}")))
                })
                .collect()
        };
        let mut edges: Vec<Vec<usize>> = Vec::with_capacity(self.host.len());
        for (i, h) in self.host.iter().enumerate() {
            let e = match &h.via {
                Some(v) => resolve(&ctx_of(i), "via", v)?,
                None => Vec::new(),
            };
            if e.contains(&i) {
                return Err(bad(
                    &ctx_of(i),
                    "via",
                    "a host cannot be its own router".into(),
                ));
            }
            edges.push(e);
        }
        // Cycles: depth-first, colouring hosts on the current stack.
        fn visit(
            i: usize,
            edges: &[Vec<usize>],
            state: &mut [u8],
            stack: &mut Vec<usize>,
        ) -> Option<Vec<usize>> {
            match state[i] {
                1 => {
                    let at = stack.iter().position(|&x| x == i).unwrap_or(0);
                    let mut c = stack[at..].to_vec();
                    c.push(i);
                    return Some(c);
                }
                2 => return None,
                _ => {}
            }
            state[i] = 1;
            stack.push(i);
            for &j in &edges[i] {
                if let Some(c) = visit(j, edges, state, stack) {
                    return Some(c);
                }
            }
            stack.pop();
            state[i] = 2;
            None
        }
        let mut state = vec![0u8; self.host.len()];
        for i in 0..self.host.len() {
            if let Some(c) = visit(i, &edges, &mut state, &mut Vec::new()) {
                let names: Vec<&str> = c.iter().map(|&k| self.host[k].name.as_str()).collect();
                return Err(bad(
                    &ctx_of(c[0]),
                    "via",
                    format!("routers form a cycle: {}", names.join(" -> ")),
                ));
            }
        }
        let closure = |start: &[usize]| -> Vec<usize> {
            let mut seen = vec![false; self.host.len()];
            let mut todo = start.to_vec();
            while let Some(k) = todo.pop() {
                if !std::mem::replace(&mut seen[k], true) {
                    todo.extend(&edges[k]);
                }
            }
            (0..self.host.len()).filter(|&k| seen[k]).collect()
        };
        let has_family =
            |k: usize, v6: bool| self.host[k].addresses.iter().any(|a| a.is_ipv6() == v6);
        // Every router a host may be reached through, per host.
        let behind: Vec<Vec<usize>> = edges.iter().map(|e| closure(e)).collect();
        for (i, h) in self.host.iter().enumerate() {
            for a in &h.addresses {
                if let Some(&r) = behind[i].iter().find(|&&r| !has_family(r, a.is_ipv6())) {
                    return Err(bad(
                        &ctx_of(i),
                        "via",
                        format!(
                            "router {:?} has no {} address to answer for {a} with",
                            self.host[r].name,
                            if a.is_ipv6() { "IPv6" } else { "IPv4" }
                        ),
                    ));
                }
            }
        }
        let unknown = match &self.network.unknown_via {
            Some(v) => closure(&resolve("[network]", "unknown_via", v)?),
            None => Vec::new(),
        };
        for (i, h) in self.host.iter().enumerate() {
            for (k, w) in h.errors.iter().enumerate() {
                let ctx = ctx_of(i);
                let f = |name: &str| format!("errors[{k}].{name}");
                check_range(w.start_ms, 0.0, f64::MAX, "")
                    .map_err(|m| bad(&ctx, &f("start_ms"), m))?;
                check_range(w.duration_ms, 0.0, f64::MAX, "")
                    .map_err(|m| bad(&ctx, &f("duration_ms"), m))?;
                if let Some(e) = w.every_ms {
                    check_range(e, 1.0, f64::MAX, "").map_err(|m| bad(&ctx, &f("every_ms"), m))?;
                    if w.duration_ms > e {
                        return Err(bad(
                            &ctx,
                            &f("duration_ms"),
                            format!("{} is longer than every_ms {e}", w.duration_ms),
                        ));
                    }
                }
                let served: Vec<usize> = (0..self.host.len())
                    .filter(|&d| behind[d].contains(&i))
                    .collect();
                if served.is_empty() && !unknown.contains(&i) {
                    return Err(bad(
                        &ctx,
                        &f("kind"),
                        "no host is reached through this one (see `via`), so it never forwards"
                            .into(),
                    ));
                }
                for n in &w.only {
                    match self.host_index(n) {
                        Some(d) if served.contains(&d) => {}
                        Some(_) => {
                            return Err(bad(
                                &ctx,
                                &f("only"),
                                format!("host {n:?} is not reached through this one"),
                            ));
                        }
                        None => {
                            return Err(bad(&ctx, &f("only"), format!("no host is named {n:?}")));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Gateways exist and are on-link; every host address can be routed.
    fn validate_routing(
        &self,
        bad: &dyn Fn(&str, &str, String) -> ScenarioError,
    ) -> Result<(), ScenarioError> {
        let gateway_ok = |ctx: &str, field: &str, name: &str| -> Result<Gateway, ScenarioError> {
            let Some(i) = self.host_index(name) else {
                return Err(bad(ctx, field, format!("no host is named {name:?}")));
            };
            let g = self.gateway_of(i);
            if g.v4.is_none() && g.v6.is_none() {
                return Err(bad(
                    ctx,
                    field,
                    format!("host {name:?} has no address on-link on any interface"),
                ));
            }
            Ok(g)
        };
        let gw = match &self.network.gateway {
            Some(name) => gateway_ok("[network]", "gateway", name)?,
            None => Gateway::default(),
        };
        let ifaces = self.interfaces();
        for (i, h) in self.host.iter().enumerate() {
            let ctx = format!("host {:?} (#{})", h.name, i + 1);
            for a in &h.addresses {
                let routed = ifaces.iter().any(|f| f.on_link(*a))
                    || match a {
                        IpAddr::V4(_) => gw.v4.is_some(),
                        IpAddr::V6(_) => gw.v6.is_some(),
                    };
                if !routed {
                    return Err(bad(
                        &ctx,
                        "addresses",
                        format!(
                            "{a} is on no interface's on-link prefix and [network] gateway gives no default route of its family"
                        ),
                    ));
                }
            }
        }
        for (i, c) in self.route_change.iter().enumerate() {
            let ctx = format!("route_change #{}", i + 1);
            gateway_ok(&ctx, "gateway", &c.gateway)?;
        }
        Ok(())
    }

    /// Windows and instants of the network timeline are valid and apart.
    fn validate_timeline(
        &self,
        bad: &dyn Fn(&str, &str, String) -> ScenarioError,
    ) -> Result<(), ScenarioError> {
        // (start, end, context) of every window; an instant is an empty window.
        let mut spans: Vec<(f64, f64, String)> = Vec::new();
        let window = |ctx: &str, start: f64, dur: f64| -> Result<(f64, f64), ScenarioError> {
            check_range(start, 0.0, f64::MAX, "").map_err(|m| bad(ctx, "start_ms", m))?;
            check_range(dur, 0.0, f64::MAX, "").map_err(|m| bad(ctx, "duration_ms", m))?;
            Ok((start, start + dur))
        };
        for (i, r) in self.route_loss.iter().enumerate() {
            let ctx = format!("route_loss #{}", i + 1);
            let (a, b) = window(&ctx, r.start_ms, r.duration_ms)?;
            if r.routes == RouteSet::Default && self.network.gateway.is_none() {
                return Err(bad(
                    &ctx,
                    "routes",
                    "\"default\": there is no default route ([network] gateway is not set)".into(),
                ));
            }
            spans.push((a, b, ctx));
        }
        for (i, l) in self.link.iter().enumerate() {
            let ctx = format!("link #{}", i + 1);
            let (a, b) = window(&ctx, l.start_ms, l.duration_ms)?;
            if let Some(name) = &l.interface
                && !self.interfaces().iter().any(|f| &f.name == name)
            {
                return Err(bad(
                    &ctx,
                    "interface",
                    format!("no interface is named {name:?}"),
                ));
            }
            spans.push((a, b, ctx));
        }
        for (i, c) in self.route_change.iter().enumerate() {
            let ctx = format!("route_change #{}", i + 1);
            check_range(c.at_ms, 0.0, f64::MAX, "").map_err(|m| bad(&ctx, "at_ms", m))?;
            spans.push((c.at_ms, c.at_ms, ctx));
        }
        spans.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.total_cmp(&y.1)));
        for w in spans.windows(2) {
            let ((a0, a1, actx), (b0, _, bctx)) = (&w[0], &w[1]);
            // Touching is fine (one ends, then the next begins); an instant
            // inside a window, or two windows that overlap, are not.
            if b0 < a1 || (b0 == a0 && a0 == a1) {
                return Err(bad(
                    bctx,
                    if bctx.starts_with("route_change") {
                        "at_ms"
                    } else {
                        "start_ms"
                    },
                    format!(
                        "{b0} ms falls within {actx} ({a0}..{a1} ms): network changes must not overlap"
                    ),
                ));
            }
        }
        Ok(())
    }
}
