//! `payments completions`: the shell completion script, on stdout.

use clap_complete::Shell;

use crate::outcome::{CliError, Exit, print_report};

/// Prints the completion script for a shell on stdout.
///
/// The script completes the subcommands, their options and the values they take. Generate it
/// again after an upgrade, as new options come with new versions.
#[derive(Debug, clap::Args)]
#[command(after_help = INSTALL)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    shell: Shell,
}

/// Printed after the options as written, line for line; each line fits in 80 columns.
const INSTALL: &str = r#"Installation, for your user (then start a new shell):
  # bash (with the bash-completion package)
  dir=${XDG_DATA_HOME:-$HOME/.local/share}/bash-completion/completions
  mkdir -p "$dir" && payments completions bash > "$dir/payments"
  # zsh, with fpath=(~/.zfunc $fpath) in ~/.zshrc before compinit
  mkdir -p ~/.zfunc && payments completions zsh > ~/.zfunc/_payments
  # fish
  payments completions fish > ~/.config/fish/completions/payments.fish
  # elvish
  payments completions elvish >> ~/.config/elvish/rc.elv
  # PowerShell
  payments completions powershell >> $PROFILE"#;

pub(crate) fn run(args: CompletionsArgs) -> Result<Exit, CliError> {
    // clap_complete panics when its writer fails, so the script is made in memory and written by
    // print_report, for which a reader that goes away (`| head`) is not an error.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut crate::command(), "payments", &mut script);
    print_report(&String::from_utf8_lossy(&script), "the completion script")?;
    Ok(Exit::Done)
}
