//! A measured figure and its rendering.

use serde::Serialize;

/// One figure: a value, and where one exists, the reference measured in the same run.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// Stable name, e.g. `daemon.cpu_ms_per_1k_pings`.
    pub name: String,
    /// The value (NaN is written as null).
    pub value: Option<f64>,
    /// Unit, e.g. `ms`, `bytes`, `frames/s`; `error` or `skipped` when not measured.
    pub unit: String,
    /// What the value is compared with (e.g. `fping 5.1`), if anything.
    pub reference: Option<String>,
    /// The reference's value in the same unit.
    pub reference_value: Option<f64>,
    /// `value / reference_value`.
    pub ratio: Option<f64>,
    /// Free-form note (conditions, or why it was skipped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

impl Figure {
    /// A figure without a reference.
    pub fn new(name: &str, value: f64, unit: &str) -> Self {
        Self {
            name: name.into(),
            value: finite(value),
            unit: unit.into(),
            reference: None,
            reference_value: None,
            ratio: None,
            note: None,
        }
    }

    /// A figure compared with `reference` measured in the same run.
    pub fn vs(name: &str, value: f64, unit: &str, reference: &str, reference_value: f64) -> Self {
        Self {
            reference: Some(reference.into()),
            reference_value: finite(reference_value),
            ratio: finite(value / reference_value),
            ..Self::new(name, value, unit)
        }
    }

    /// Adds a note.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// A suite that failed.
    pub fn failed(name: &str, why: &str) -> Self {
        Self {
            value: None,
            unit: "error".into(),
            ..Self::new(name, f64::NAN, "error")
        }
        .note(why)
    }

    /// A figure that could not be measured here (with the reason).
    pub fn skipped(name: &str, why: &str) -> Self {
        Self {
            value: None,
            unit: "skipped".into(),
            ..Self::new(name, f64::NAN, "skipped")
        }
        .note(why)
    }

    /// One table row.
    pub fn row(&self) -> String {
        let v = self.value.map_or("-".into(), fmt_num);
        let mut s = format!("{:<40} {:>12} {:<10}", self.name, v, self.unit);
        if let Some(r) = &self.reference {
            let rv = self.reference_value.map_or("-".into(), fmt_num);
            let ratio = self.ratio.map_or("-".into(), |x| format!("{x:.3}"));
            s += &format!(" vs {r} {rv} (ratio {ratio})");
        }
        if let Some(n) = &self.note {
            s += &format!("  [{n}]");
        }
        s
    }
}

fn fmt_num(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e6 || v.abs() < 1e-3) {
        format!("{v:.3e}")
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// The whole table.
pub fn table(figures: &[Figure]) -> String {
    let mut out = format!(
        "{:<40} {:>12} {:<10} reference\n",
        "figure", "value", "unit"
    );
    for f in figures {
        out += &f.row();
        out.push('\n');
    }
    out
}
