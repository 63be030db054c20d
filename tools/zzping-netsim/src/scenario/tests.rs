//! Scenario parsing and validation tests.

use super::*;

fn parse(t: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(t, Path::new("x.toml"))
}

const OK: &str = r#"
        [simulation]
        seed = 7
        [[host]]
        name = "gw"
        addresses = ["198.18.0.10", "2001:db8::10"]
        rtt_ms = 1.5
        jitter = { dist = "pareto", scale_ms = 1, shape = 2.5 }
        burst = [{ every_ms = 30000, duration_ms = 300, offset_ms = 1000 }]
        [[host]]
        name = "quiet"
        addresses = ["198.19.255.1"]
        behavior = "silent"
    "#;

#[test]
fn parses_full_example() {
    let s = parse(OK).unwrap();
    assert_eq!(s.simulation.seed, 7);
    assert_eq!(s.host.len(), 2);
    assert_eq!(
        s.host[0].jitter,
        Jitter::Pareto {
            scale_ms: 1.0,
            shape: 2.5
        }
    );
    assert_eq!(s.host[1].behavior, Behavior::Silent);
    assert_eq!(s.network, NetworkSpec::default());
    assert!(s.host[0].summary().contains("burst=300ms/30000ms@1000ms"));
}

fn err(t: &str) -> String {
    let e = parse(t).unwrap_err().to_string();
    assert!(e.contains("x.toml"), "error does not name the file: {e}");
    e
}

#[test]
fn errors_name_host_and_field() {
    let e = err(r#"[[host]]
            name = "gw"
            addresses = ["198.18.0.10"]
            loss = 1.5"#);
    assert!(
        e.contains("host \"gw\"") && e.contains("`loss`") && e.contains("1.5"),
        "{e}"
    );

    let e = err(r#"[[host]]
            name = "a"
            addresses = ["198.18.0.10"]
            [[host]]
            name = "wifi"
            addresses = ["198.18.0.11"]
            rtt_ms = "fast""#);
    assert!(
        e.contains("host \"wifi\" (#2)") && e.contains("rtt_ms"),
        "{e}"
    );

    let e = err(r#"[[host]]
            name = "gw"
            addresses = ["198.18.0.10"]
            jiter = { dist = "none" }"#);
    assert!(e.contains("host \"gw\"") && e.contains("jiter"), "{e}");

    let e = err(r#"[[host]]
            name = "gw"
            addresses = ["10.0.0.1"]"#);
    assert!(e.contains("`addresses`") && e.contains("10.0.0.1"), "{e}");

    let e = err(r#"[[host]]
            name = "gw"
            addresses = ["198.18.0.1"]"#);
    assert!(e.contains("local_v4"), "{e}");

    let e = err(r#"[[host]]
            name = "gw"
            addresses = ["198.18.0.10"]
            burst = [{ every_ms = 100, duration_ms = 300 }]"#);
    assert!(e.contains("burst[0].duration_ms"), "{e}");

    let e = err(r#"[[host]]
            name = "gw"
            addresses = ["198.18.0.10"]
            jitter = { dist = "gauss", stddev_ms = 1 }"#);
    assert!(e.contains("host \"gw\"") && e.contains("gauss"), "{e}");

    let e = err(r#"[[host]]
            name = "a"
            addresses = ["198.18.0.10"]
            [[host]]
            name = "a"
            addresses = ["198.18.0.11"]"#);
    assert!(e.contains("duplicate host name"), "{e}");

    let e = err(r#"[[host]]
            name = "a"
            addresses = ["198.18.0.10"]
            [[host]]
            name = "b"
            addresses = ["198.18.0.10"]"#);
    assert!(e.contains("also used by host \"a\""), "{e}");

    let e = err("[[host]\nname=");
    assert!(e.contains("syntax"), "{e}");
    let e = err("");
    assert!(e.contains("no [[host]]"), "{e}");
    let e = err(r#"[network]
            tun_name = "this-name-is-way-too-long"
            [[host]]
            name = "a"
            addresses = ["198.18.0.10"]"#);
    assert!(e.contains("[network]") && e.contains("tun_name"), "{e}");
    let e = err(r#"[[host]]
            name = "a"
            addresses = ["198.18.0.10"]
            rate_limit = { per_second = 0 }"#);
    assert!(e.contains("rate_limit.per_second"), "{e}");
}

#[test]
fn network_timeline_errors_name_table_and_field() {
    const LAN: &str = r#"
            [network]
            prefix_v4_len = 24
            prefix_v6_len = 64
            router_v4 = "198.18.0.253"
            router_v6 = "2001:db8::fd"
            gateway = "gw"
            [[host]]
            name = "gw"
            addresses = ["198.18.0.254", "2001:db8::fe"]
            [[host]]
            name = "far"
            addresses = ["198.19.8.8"]
        "#;
    let s = parse(LAN).unwrap();
    assert_eq!(
        s.initial_gateway(),
        Gateway {
            v4: Some(("198.18.0.254".parse().unwrap(), 0)),
            v6: Some(("2001:db8::fe".parse().unwrap(), 0)),
        }
    );
    let with = |extra: &str| err(&format!("{LAN}\n{extra}"));

    let e = err(&LAN.replace("gateway = \"gw\"", "gateway = \"nope\""));
    assert!(
        e.contains("[network]") && e.contains("`gateway`") && e.contains("nope"),
        "{e}"
    );
    let e = err(&LAN.replace("gateway = \"gw\"", ""));
    assert!(
        e.contains("host \"far\"") && e.contains("`addresses`") && e.contains("198.19.8.8"),
        "{e}"
    );
    let e = err(&LAN.replace("gateway = \"gw\"", "gateway = \"far\""));
    assert!(e.contains("`gateway`") && e.contains("on-link"), "{e}");
    let e = with(
        "[[route_loss]]\nstart_ms = 1000\nduration_ms = 500\n[[link]]\nstart_ms = 1200\nduration_ms = 10",
    );
    assert!(
        e.contains("link #1") && e.contains("route_loss #1") && e.contains("overlap"),
        "{e}"
    );
    let e = with(
        "[[route_loss]]\nstart_ms = 1000\nduration_ms = 500\n[[route_change]]\nat_ms = 1499\ngateway = \"gw\"",
    );
    assert!(
        e.contains("route_change #1") && e.contains("`at_ms`"),
        "{e}"
    );
    // Touching windows are fine.
    parse(&format!("{LAN}\n[[route_loss]]\nstart_ms = 1000\nduration_ms = 500\n[[link]]\nstart_ms = 1500\nduration_ms = 10")).unwrap();
    let e = with("[[link]]\nstart_ms = 1\nduration_ms = 1\ninterface = \"eth9\"");
    assert!(
        e.contains("link #1") && e.contains("`interface`") && e.contains("eth9"),
        "{e}"
    );
    let e = with("[[link]]\nstart_ms = 1\nduration_ms = 1\nmode = \"unplugged\"");
    assert!(e.contains("link #1") && e.contains("unplugged"), "{e}");
    let e = with("[[route_loss]]\nstart_ms = -1\nduration_ms = 1");
    assert!(
        e.contains("route_loss #1") && e.contains("`start_ms`"),
        "{e}"
    );
    let e = with("[[route_loss]]\nstart_ms = 1\nduration_ms = 1\nroute = \"all\"");
    assert!(e.contains("route_loss #1") && e.contains("route"), "{e}");
    let e = err(&format!(
        "{}\n[[route_loss]]\nstart_ms = 1\nduration_ms = 1\nroutes = \"default\"",
        LAN.replace("gateway = \"gw\"", "")
            .replace("\"198.19.8.8\"", "\"198.18.0.8\"")
    ));
    assert!(e.contains("route_loss #1") && e.contains("`routes`"), "{e}");
    let e = with("[[interface]]\nname = \"zzsim1\"\nlocal_v4 = \"198.18.0.77\"");
    assert!(
        e.contains("interface \"zzsim1\"") && e.contains("overlaps"),
        "{e}"
    );
    let e = with("[[interface]]\nname = \"zzsim0\"\nlocal_v4 = \"198.18.1.1\"");
    assert!(e.contains("`name`") && e.contains("twice"), "{e}");
    let e = with("[[interface]]\nname = \"zzsim1\"");
    assert!(
        e.contains("interface \"zzsim1\"") && e.contains("local_v4"),
        "{e}"
    );
    let e = with("[[route_change]]\nat_ms = 5\ngateway = \"far\"");
    assert!(
        e.contains("route_change #1") && e.contains("on-link"),
        "{e}"
    );
    let e = err(&LAN.replace("prefix_v4_len = 24", "prefix_v4_len = 8"));
    assert!(e.contains("prefix_v4_len") && e.contains("15..=32"), "{e}");
}

#[test]
fn path_errors_name_host_and_field() {
    const BASE: &str = r#"
            [network]
            prefix_v4_len = 24
            router_v4 = "198.18.0.253"
            router_v6 = "2001:db8::fd"
            gateway = "gw"
            [[host]]
            name = "gw"
            addresses = ["198.18.0.254"]
            [[host]]
            name = "edge"
            addresses = ["198.19.0.1"]
            via = "gw"
        "#;
    parse(BASE).unwrap();
    let with = |extra: &str| err(&format!("{BASE}\n{extra}"));
    let e = with("[[host]]\nname = \"far\"\naddresses = [\"198.19.8.8\"]\nvia = \"nope\"");
    assert!(
        e.contains("host \"far\"") && e.contains("`via`") && e.contains("nope"),
        "{e}"
    );
    let e = with("[[host]]\nname = \"far\"\naddresses = [\"198.19.8.8\"]\nvia = \"far\"");
    assert!(e.contains("own router"), "{e}");
    let e = with("[[host]]\nname = \"far\"\naddresses = [\"198.19.8.8\"]\nvia = []");
    assert!(e.contains("`via`") && e.contains("no router"), "{e}");
    let e = err(&BASE.replace("via = \"gw\"", "via = \"loop\"").replace(
            "[[host]]\n            name = \"edge\"",
            "[[host]]\nname = \"loop\"\naddresses = [\"198.19.0.2\"]\nvia = \"edge\"\n[[host]]\n            name = \"edge\"",
        ));
    assert!(
        e.contains("cycle")
            && (e.contains("edge -> loop -> edge") || e.contains("loop -> edge -> loop")),
        "{e}"
    );
    // A router must be able to answer in the family of the hosts behind it.
    let e = err(&format!(
        "{}\n[[host]]\nname = \"far\"\naddresses = [\"198.19.8.8\", \"2001:db8:8000::8\"]\nvia = \"edge\"",
        BASE.replace("gateway = \"gw\"", "gateway = \"gw\"\nprefix_v6_len = 64")
            .replace(
                "addresses = [\"198.18.0.254\"]",
                "addresses = [\"198.18.0.254\", \"2001:db8::fe\"]"
            )
    ));
    assert!(
        e.contains("host \"far\"") && e.contains("router \"edge\" has no IPv6 address"),
        "{e}"
    );
    let e = err(&BASE.replace(
        "via = \"gw\"",
        "via = \"gw\"\nerrors = [{ start_ms = 0, duration_ms = 1, kind = \"host_unreachable\" }]",
    ));
    assert!(
        e.contains("host \"edge\"") && e.contains("errors[0]") && e.contains("never forwards"),
        "{e}"
    );
    let e = err(&BASE.replace(
            "name = \"gw\"\n            addresses = [\"198.18.0.254\"]",
            "name = \"gw\"\n            addresses = [\"198.18.0.254\"]\nerrors = [{ start_ms = 0, duration_ms = 1, kind = \"host_unreachable\", only = [\"gw\"] }]",
        ));
    assert!(
        e.contains("errors[0].only") && e.contains("not reached through"),
        "{e}"
    );
    let e = err(&BASE.replace(
            "name = \"gw\"\n            addresses = [\"198.18.0.254\"]",
            "name = \"gw\"\n            addresses = [\"198.18.0.254\"]\nerrors = [{ start_ms = 0, duration_ms = 1, kind = \"teapot\" }]",
        ));
    assert!(e.contains("host \"gw\"") && e.contains("teapot"), "{e}");
    let e = err(&BASE.replace(
        "gateway = \"gw\"",
        "gateway = \"gw\"\nunknown_via = \"nope\"",
    ));
    assert!(e.contains("`unknown_via`") && e.contains("nope"), "{e}");
}

proptest::proptest! {
    #[test]
    fn arbitrary_text_never_panics(t in "[\\[\\]a-z_=\"0-9.,{} \n-]{0,200}") {
        let _ = parse(&t);
    }

    #[test]
    fn arbitrary_host_values_never_panic(
        rtt in proptest::num::f64::ANY,
        loss in proptest::num::f64::ANY,
        every in proptest::num::f64::ANY,
        dur in proptest::num::f64::ANY,
        rate in proptest::num::f64::ANY,
    ) {
        let t = format!(
            "[[host]]\nname = \"h\"\naddresses = [\"198.18.0.10\"]\nrtt_ms = {rtt:?}\nloss = {loss:?}\nburst = [{{ every_ms = {every:?}, duration_ms = {dur:?} }}]\nrate_limit = {{ per_second = {rate:?} }}\n"
        );
        if let Ok(s) = parse(&t) {
            // Whatever validates is usable by the decision engine.
            let mut n = crate::profile::Network::new(&s);
            for i in 0..20u64 {
                let _ = n.decide("198.18.0.10".parse().unwrap(), i * 1_000_003);
            }
        }
    }
}

#[test]
fn public_mapping() {
    for (a, public) in [
        ("198.18.0.254", false),
        ("198.18.255.1", false),
        ("198.19.0.1", true),
        ("198.19.8.8", true),
        ("2001:db8::fe", false),
        ("2001:db8:7fff::1", false),
        ("2001:db8:8000::1", true),
        ("2001:db8:ffff::1", true),
        ("203.0.113.7", false),
    ] {
        assert_eq!(plays_public(a.parse().unwrap()), public, "{a}");
    }
}

#[test]
fn prefix_membership() {
    assert!(in_simulated_prefix("198.18.0.0".parse().unwrap()));
    assert!(in_simulated_prefix("198.19.255.255".parse().unwrap()));
    assert!(!in_simulated_prefix("198.20.0.1".parse().unwrap()));
    assert!(!in_simulated_prefix("198.17.255.255".parse().unwrap()));
    assert!(in_simulated_prefix("2001:db8:ffff::1".parse().unwrap()));
    assert!(!in_simulated_prefix("2001:db9::1".parse().unwrap()));
}

#[test]
fn repo_scenarios_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/scenarios");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            Scenario::load(&p).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(
        n >= 8,
        "expected at least 8 scenarios in {}, found {n}",
        dir.display()
    );
}
