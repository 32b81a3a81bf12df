//! What the benchmark binaries share: the `main` skeleton, the command line
//! bits cargo adds, printing, and a hand-built JSON object (no serde in this
//! crate). Each bench says `mod common;`; Cargo does not treat this
//! directory as a bench target.

use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, Parser};
use muxraft::testkit::{Cluster, GroupSpec};

/// What cargo puts on a bench's command line besides the bench's own flags:
/// `--bench` (always, from `cargo bench`) and the name filter of `cargo
/// bench FILTER`. Each bench flattens this into its arguments so that both
/// are accepted; neither means anything here.
#[derive(clap::Args, Clone, Debug)]
#[allow(dead_code)] // parsed to be accepted, never read
pub struct CargoArgs {
    /// Passed by `cargo bench`; ignored
    #[arg(long)]
    bench: bool,
    /// The name filter of `cargo bench FILTER`; ignored
    #[arg(value_name = "FILTER")]
    filter: Vec<String>,
}

/// Parse the command line into `A`. Bad arguments print clap's message and
/// exit with 2, `--help` prints the help and exits with 0. Also returns the
/// matches, for [`given`]. A name filter gets a note on stderr, every line
/// of which starts with `name`.
pub fn parse_command_line<A: Parser>(name: &str) -> (A, ArgMatches) {
    let m = A::command().get_matches();
    let a = A::from_arg_matches(&m).unwrap_or_else(|e| e.exit());
    for f in m.get_many::<String>("filter").into_iter().flatten() {
        eprintln!("{name}: ignoring the name filter `{f}`");
    }
    (a, m)
}

/// Did the command line give the argument `id` (a field name), rather than
/// leave it at its default?
pub fn given(m: &ArgMatches, id: &str) -> bool {
    m.value_source(id) == Some(ValueSource::CommandLine)
}

/// The flags `run_main` acts on.
pub trait Args {
    /// `--json`: one JSON object on one line instead of the table.
    fn json(&self) -> bool;
    /// `--smoke`: check `Report::smoke_failures`, exit non-zero if any.
    fn smoke(&self) -> bool;
}

/// What a finished bench run prints.
pub trait Report {
    fn json(&self) -> String;
    fn table(&self) -> String;
    /// Printed to stderr after the output, smoke or not.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
    /// What `--smoke` requires; returns the failures.
    fn smoke_failures(&self) -> Vec<String>;
}

/// Parse the arguments, run, print the table or `--json` line, then the
/// warnings, then (with `--smoke`) the smoke verdict. Every line on stderr
/// starts with `name`; `debug_note` says why a debug build's figures are
/// not worth reading. Exit codes: 2 for bad arguments, 1 for a failed run
/// or smoke check.
pub fn run_main<A: Args, R: Report>(
    name: &str,
    debug_note: &str,
    parse: impl FnOnce() -> Result<A, String>,
    run: impl FnOnce(&A) -> Result<R, String>,
) -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    if cfg!(debug_assertions) && !args.smoke() {
        eprintln!("{name}: debug build; {debug_note}");
    }
    let report = match run(&args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: FAILED: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.json() {
        emit(&format!("{}\n", report.json()));
    } else {
        emit(&report.table());
    }
    for w in report.warnings() {
        eprintln!("{w}");
    }
    if args.smoke() {
        let failures = report.smoke_failures();
        if failures.is_empty() {
            eprintln!("{name}: smoke OK");
        } else {
            for f in &failures {
                eprintln!("{name}: smoke FAILED: {f}");
            }
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// Print to stdout; a closed pipe (`| head`) is not worth a panic.
pub fn emit(s: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes()).and_then(|()| out.flush());
}

/// A flat JSON object, fields in insertion order.
#[derive(Default)]
pub struct JsonObject {
    fields: Vec<String>,
}

impl JsonObject {
    fn push(&mut self, k: &str, v: &str) {
        // Keys here are ASCII identifiers; escape anyway.
        self.fields.push(format!("\"{}\":{v}", json_escape(k)));
    }

    /// An integer; `None` is `null`.
    pub fn int(&mut self, k: &str, v: impl Into<Option<u64>>) {
        let v = v.into().map_or("null".to_string(), |v| v.to_string());
        self.push(k, &v);
    }

    /// A number as [`json_num`] writes it; `None` is `null`.
    pub fn num(&mut self, k: &str, v: impl Into<Option<f64>>) {
        let v = v.into().map_or("null".to_string(), json_num);
        self.push(k, &v);
    }

    #[allow(dead_code)] // heartbeat_latency has no string fields
    pub fn str(&mut self, k: &str, v: &str) {
        self.push(k, &format!("\"{}\"", json_escape(v)));
    }

    #[allow(dead_code)] // heartbeat has no boolean fields
    pub fn bool(&mut self, k: &str, v: bool) {
        self.push(k, &v.to_string());
    }

    pub fn finish(self) -> String {
        format!("{{{}}}", self.fields.join(","))
    }
}

/// At most three decimals, trailing zeros trimmed ("40.000" is "40", "7.250"
/// is "7.25"); NaN and infinities, which JSON cannot hold, are `null`.
fn json_num(v: f64) -> String {
    if !v.is_finite() {
        return "null".into();
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.to_string()
    }
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Create groups 1..=L on the in-process cluster, group g on
/// `members[g - 1]` (incarnation 1), then have each group's first member
/// campaign (no time passes: the ticks after settle the elections).
#[allow(dead_code)] // not every bench runs the in-process cluster
pub fn create_and_campaign(cluster: &mut Cluster, members: &[Vec<u64>]) -> Result<(), String> {
    for (g, m) in (1..).zip(members) {
        let spec = GroupSpec {
            incarnation: 1,
            members: m.clone(),
            ..Default::default()
        };
        cluster
            .create_group(g, spec, 0)
            .map_err(|e| format!("create group {g}: {e}"))?;
    }
    for (g, m) in (1..).zip(members) {
        cluster.campaign(m[0], g)?;
    }
    Ok(())
}
