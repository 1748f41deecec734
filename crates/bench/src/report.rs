//! The results: rows of a markdown table and their JSON form, plus a
//! description of the machine they were measured on.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::relay::Variant;

/// The unit of a row's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unit {
    /// Megabytes (10^6 bytes) per second.
    MegabytesPerSecond,
    /// Microseconds.
    Micros,
    /// Mebibytes.
    Mebibytes,
    /// A plain ratio.
    Ratio,
    /// Seconds.
    Seconds,
}

impl Unit {
    fn format(self, value: f64) -> String {
        match self {
            Unit::MegabytesPerSecond => format!("{value:.0} MB/s"),
            Unit::Micros => format!("{value:.1} µs"),
            Unit::Mebibytes => format!("{value:.1} MiB"),
            Unit::Ratio => {
                if value < 0.01 {
                    format!("{value:.4}")
                } else {
                    format!("{value:.3}")
                }
            }
            Unit::Seconds => format!("{value:.3} s"),
        }
    }
}

/// One row of the table: a measured quantity per variant (medians over the
/// runs), a derived figure, and the target it is held to.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What is measured.
    pub case: String,
    /// The unit of `values` and `samples`.
    pub unit: Unit,
    /// The median per variant.
    pub values: BTreeMap<Variant, f64>,
    /// Every run's value per variant, in run order.
    pub samples: BTreeMap<Variant, Vec<f64>>,
    /// The derived figure the target is about (a ratio, or added microseconds).
    pub ratio: Option<f64>,
    /// How `ratio` reads in the table, such as `0.97` or `+8.1 µs`.
    pub ratio_text: String,
    /// The target.
    pub target: String,
    /// Whether the target was met; `None` when it could not be judged.
    pub met: Option<bool>,
}

impl Row {
    /// A row with values but no ratio or target yet.
    pub fn new(case: impl Into<String>, unit: Unit, samples: BTreeMap<Variant, Vec<f64>>) -> Row {
        let values = samples
            .iter()
            .filter_map(|(v, s)| crate::stats::median(s).map(|m| (*v, m)))
            .collect();
        Row {
            case: case.into(),
            unit,
            values,
            samples,
            ratio: None,
            ratio_text: String::new(),
            target: String::new(),
            met: None,
        }
    }

    /// The median of `variant`, if measured.
    pub fn value(&self, variant: Variant) -> Option<f64> {
        self.values.get(&variant).copied()
    }
}

/// A case that did not run, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// The case.
    pub case: String,
    /// Why it was skipped.
    pub reason: String,
}

/// The machine the results come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPU model name.
    pub cpu: String,
    /// Logical CPUs.
    pub cpus: usize,
    /// Total memory in MiB.
    pub memory_mib: u64,
    /// Kernel release.
    pub kernel: String,
    /// Load averages (1, 5, 15 min) when the benchmark started.
    pub load_at_start: String,
    /// Load averages when it ended.
    pub load_at_end: String,
    /// `socat -V` version line, if socat is installed.
    pub socat: Option<String>,
    /// The Nix version of the real daemon, if one ran.
    pub nix: Option<String>,
}

impl Machine {
    /// Reads what `/proc` says about this machine.
    pub fn describe(socat: Option<String>) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_mib = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        Machine {
            cpu,
            cpus,
            memory_mib,
            kernel,
            load_at_start: load_average(),
            load_at_end: String::new(),
            socat,
            nix: None,
        }
    }
}

/// The first three fields of `/proc/loadavg`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Everything one benchmark run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// UTC date and time of the start, `YYYY-MM-DD HH:MM UTC`.
    pub date: String,
    /// The machine.
    pub machine: Machine,
    /// Whether this was a `--quick` smoke run (small sizes, not comparable).
    pub quick: bool,
    /// How many interleaved runs each case had.
    pub runs: usize,
    /// What played the recorder.
    pub recorder: String,
    /// The rows.
    pub rows: Vec<Row>,
    /// Cases that did not run.
    pub skipped: Vec<Skipped>,
    /// Remarks on the method.
    pub notes: Vec<String>,
}

/// The column headings of the table, in order.
pub const HEADINGS: [&str; 8] = [
    "case", "direct", "nixcap", "socat", "socat -v", "ratio", "target", "met?",
];

impl Results {
    /// The results as markdown: a table, then skipped cases and notes.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "nixcap benchmarks, {}{}: {} × {}, {} MiB RAM, Linux {}; load {} at start, {} at end; {} interleaved runs per case, medians shown.",
            self.date,
            if self.quick { " (--quick: small sizes, not comparable)" } else { "" },
            m.cpus,
            m.cpu,
            m.memory_mib,
            m.kernel,
            m.load_at_start,
            m.load_at_end,
            self.runs,
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "| {} |", HEADINGS.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(HEADINGS.len()));
        for row in &self.rows {
            let cell = |v: Variant| {
                row.value(v)
                    .map_or_else(|| "–".to_owned(), |x| row.unit.format(x))
            };
            let met = match row.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                row.case,
                cell(Variant::Direct),
                cell(Variant::Nixcap),
                cell(Variant::Socat),
                cell(Variant::SocatVerbose),
                if row.ratio_text.is_empty() {
                    "–"
                } else {
                    &row.ratio_text
                },
                if row.target.is_empty() {
                    "–"
                } else {
                    &row.target
                },
                met,
            );
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(out, "\nNot measured:\n");
            for s in &self.skipped {
                let _ = writeln!(out, "- {}: {}", s.case, s.reason);
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(out, "\nNotes:\n");
            for n in &self.notes {
                let _ = writeln!(out, "- {n}");
            }
        }
        out
    }
}

/// Now as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs)
}

fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(
            format_utc(1_735_689_600 + 3_600 + 120),
            "2025-01-01 01:02 UTC"
        );
    }

    #[test]
    fn table_has_one_line_per_row_and_eight_columns() {
        let mut samples = BTreeMap::new();
        samples.insert(Variant::Direct, vec![10.0, 12.0, 11.0]);
        samples.insert(Variant::Nixcap, vec![20.0]);
        let mut row = Row::new("latency p50", Unit::Micros, samples);
        row.ratio_text = "+9.0 µs".to_owned();
        assert_eq!(row.value(Variant::Direct), Some(11.0));
        let results = Results {
            date: format_utc(0),
            machine: Machine::describe(None),
            quick: true,
            runs: 3,
            recorder: "test".to_owned(),
            rows: vec![row],
            skipped: Vec::new(),
            notes: Vec::new(),
        };
        let md = results.markdown();
        let line = md.lines().find(|l| l.starts_with("| latency p50")).unwrap();
        assert_eq!(line.matches('|').count(), 9);
        assert!(line.contains("11.0 µs") && line.contains("20.0 µs") && line.contains("+9.0 µs"));
    }
}
