//! The command line explains itself: every option and argument of every subcommand has help text,
//! `--version` names the commit, completions are written for the usual shells, and the exit codes
//! are in `--help`.

mod common;

fn help(path: &[String]) -> String {
    let o = common::bin().args(path).arg("--help").output().expect("run --help");
    assert!(o.status.success(), "{path:?} --help: {}", common::text(&o));
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// The lines of a help section (`Commands:`, `Options:`, `Arguments:`) up to the next blank line.
fn section<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let mut lines = text.lines().skip_while(|l| l.trim() != name);
    lines.next();
    lines.take_while(|l| !l.trim().is_empty()).collect()
}

/// Entries of Options / Arguments without a description (a default alone is no description). Clap
/// puts a description after the entry, or on the next lines when some are long.
fn undocumented(text: &str) -> Vec<String> {
    let is_entry = |t: &str| t.starts_with('-') || t.starts_with('<') || t.starts_with('[');
    let mut out = Vec::new();
    for name in ["Options:", "Arguments:"] {
        let lines = section(text, name);
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            if !is_entry(t) {
                continue; // a description line
            }
            let inline =
                t.split_once("  ").map(|(_, d)| d.trim()).is_some_and(|d| !d.is_empty() && !d.starts_with("[default"));
            let below = lines.get(i + 1).is_some_and(|next| {
                let n = next.trim_start();
                !is_entry(n)
                    && !n.is_empty()
                    && !n.starts_with("[default")
                    && next.len() - n.len() > line.len() - t.len()
            });
            if !inline && !below {
                out.push(t.to_string());
            }
        }
    }
    out
}

#[test]
fn every_option_and_argument_of_every_subcommand_has_help() {
    let mut missing = Vec::new();
    let mut todo: Vec<Vec<String>> = vec![vec![]];
    let mut seen = 0;
    while let Some(path) = todo.pop() {
        let text = help(&path);
        seen += 1;
        for u in undocumented(&text) {
            missing.push(format!("dte-gateway {}: {u}", path.join(" ")));
        }
        for line in section(&text, "Commands:") {
            let Some(name) = line.split_whitespace().next() else { continue };
            if name == "help" {
                continue;
            }
            let described = line.trim_start().split_once("  ").is_some_and(|(_, d)| !d.trim().is_empty());
            if !described {
                missing.push(format!("dte-gateway {} {name}: no description", path.join(" ")));
            }
            let mut sub = path.clone();
            sub.push(name.to_string());
            todo.push(sub);
        }
    }
    assert!(seen > 20, "only {seen} commands walked");
    assert!(missing.is_empty(), "without help text:\n{}", missing.join("\n"));
}

#[test]
fn version_names_the_commit_and_help_the_exit_codes() {
    let o = common::bin().arg("--version").output().unwrap();
    let v = String::from_utf8_lossy(&o.stdout);
    assert!(v.starts_with(&format!("dte-gateway {} (commit ", env!("CARGO_PKG_VERSION"))), "{v}");
    let text = help(&[]);
    assert!(text.contains("Exit codes:") && text.contains("  2  bad input"), "{text}");
    for shell in ["bash", "zsh", "fish"] {
        let o = common::bin().args(["completions", shell]).output().unwrap();
        assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("dte-gateway"), "{shell}");
    }
}
