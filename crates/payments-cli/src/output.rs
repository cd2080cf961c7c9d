//! How much the command says, and whether it colours what it says: `-q`, `-v` and `--color`
//! (with `NO_COLOR` and `CLICOLOR_FORCE`), read once when it starts.

use std::sync::atomic::{AtomicBool, Ordering};

/// When to colour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set (or always, when `CLICOLOR_FORCE` is).
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// The output options every command takes.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct OutputArgs {
    /// Print errors only (no progress, no summary, no warnings).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Say more: -v the steps of a run, -vv the engine's decisions, -vvv everything (RUST_LOG
    /// still chooses when neither -q nor -v is given).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Colour the output: auto (a terminal, unless NO_COLOR is set; CLICOLOR_FORCE forces it),
    /// always or never.
    #[arg(long, global = true, value_enum, default_value_t, value_name = "WHEN")]
    color: ColorChoice,
}

/// Set once by [`OutputArgs::apply`].
static QUIET: AtomicBool = AtomicBool::new(false);

/// Whether the command prints errors only.
pub(crate) fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// The crates whose decisions `-vv` shows.
const OURS: [&str; 8] = [
    "payments_cli",
    "payments_sync",
    "payments_fleet",
    "payments_serve",
    "payments_http",
    "payments_sources",
    "paypro_api",
    "mkp_api",
];

impl OutputArgs {
    /// Records `-q` for [`quiet`].
    pub(crate) fn apply(&self) {
        QUIET.store(self.quiet, Ordering::Relaxed);
    }

    /// The log filter: `-q` errors only, `-v` and more ever more of this program's crates;
    /// without either, `RUST_LOG` when set, else `default`.
    pub(crate) fn log_filter(&self, default: &str) -> String {
        let ours = |level: &str| {
            OURS.iter()
                .map(|name| format!("{name}={level}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        match (self.quiet, self.verbose) {
            (true, _) => "error".to_owned(),
            (false, 0) => std::env::var("RUST_LOG")
                .ok()
                .filter(|filter| !filter.trim().is_empty())
                .unwrap_or_else(|| default.to_owned()),
            (false, 1) => format!("warn,{}", ours("info")),
            (false, 2) => format!("warn,{}", ours("debug")),
            (false, _) => format!("debug,{}", ours("trace")),
        }
    }

    /// Whether to colour a stream that is (or is not) a terminal.
    pub(crate) fn colour(&self, terminal: bool) -> bool {
        let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0");
        match self.color {
            ColorChoice::Never => false,
            ColorChoice::Always => true,
            ColorChoice::Auto if set("NO_COLOR") => false,
            ColorChoice::Auto if set("CLICOLOR_FORCE") => true,
            ColorChoice::Auto => terminal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_is_errors_only_and_each_v_says_more_of_ours() {
        let quiet = OutputArgs {
            quiet: true,
            ..OutputArgs::default()
        };
        assert_eq!(quiet.log_filter("warn"), "error");
        let v = |n| OutputArgs {
            verbose: n,
            ..OutputArgs::default()
        };
        assert!(v(1).log_filter("warn").contains("payments_sync=info"));
        assert!(v(2).log_filter("warn").contains("payments_sync=debug"));
        assert!(
            v(2).log_filter("warn").starts_with("warn,"),
            "not hyper's debug"
        );
        assert!(v(3).log_filter("warn").contains("payments_sync=trace"));
    }

    #[test]
    fn never_and_always_win_over_the_terminal() {
        let with = |color| OutputArgs {
            color,
            ..OutputArgs::default()
        };
        assert!(!with(ColorChoice::Never).colour(true));
        assert!(with(ColorChoice::Always).colour(false));
    }
}
