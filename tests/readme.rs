//! README's sample outputs against what the commands print: the sample of
//! `mailplan plan examples/plans/quickstart.yaml` (its `Plan:` and `Deletions:` lines above all)
//! must be lines the real binary prints, and so must its excerpts of `mailplan report` in
//! Markdown and CSV; its description of the HTML report must name every part the page has. So
//! the README cannot go stale unnoticed.

mod common;

use assert_cmd::Command;
use common::*;

const QUICKSTART: &str = "examples/plans/quickstart.yaml";

const CARBONIO: &str = "examples/plans/carbonio.yaml";
const CARBONIO_HEADING: &str = "## Into Carbonio, step by step";

/// README, without its Carbonio section (whose samples are of the Carbonio example).
fn readme() -> String {
    let (before, _, after) = split_carbonio(&full_readme());
    format!("{before}{after}")
}

fn full_readme() -> String {
    std::fs::read_to_string(root().join("README.md")).unwrap()
}

/// README before the Carbonio section, the section, and what follows it.
fn split_carbonio(text: &str) -> (String, String, String) {
    let start = text
        .find(CARBONIO_HEADING)
        .expect("README has no Carbonio walk-through");
    let rest = &text[start + CARBONIO_HEADING.len()..];
    let end = rest
        .find("\n## ")
        .map_or(text.len(), |i| start + CARBONIO_HEADING.len() + i + 1);
    (
        text[..start].to_string(),
        text[start..end].to_string(),
        text[end..].to_string(),
    )
}

/// What `mailplan ARGS` prints on standard output, uncoloured, run from the repository's root.
fn output_of(args: &[&str]) -> String {
    let out = Command::cargo_bin("mailplan")
        .unwrap()
        .current_dir(root())
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mailplan {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The output of `mailplan plan` on the quickstart example, uncoloured.
fn quickstart_plan() -> String {
    let out = Command::cargo_bin("mailplan")
        .unwrap()
        .current_dir(root())
        .env("NO_COLOR", "1")
        .args(["plan", QUICKSTART])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mailplan plan {QUICKSTART} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The bodies of README's fenced blocks without a language (sample output, not commands).
fn output_blocks(text: &str) -> Vec<Vec<&str>> {
    let mut blocks = Vec::new();
    // Inside a block: whether it is sample output (no language), and its lines.
    let mut current: Option<(bool, Vec<&str>)> = None;
    for line in text.lines() {
        let fence = line.trim_start().strip_prefix("```");
        match (current.take(), fence) {
            (None, Some(info)) => current = Some((info.trim().is_empty(), Vec::new())),
            (Some((output, block)), Some(_)) => {
                if output {
                    blocks.push(block);
                }
            }
            (Some((output, mut block)), None) => {
                block.push(line);
                current = Some((output, block));
            }
            (None, None) => {}
        }
    }
    blocks
}

/// The one line of `output` that starts with `prefix`.
fn line_starting<'a>(output: &'a str, prefix: &str) -> &'a str {
    let lines: Vec<&str> = output.lines().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(lines.len(), 1, "one `{prefix}` line expected in:\n{output}");
    lines[0]
}

/// README's sample blocks of the quickstart plan: the output blocks with a `Plan:` line.
fn plan_samples(text: &str) -> Vec<Vec<&str>> {
    let samples: Vec<_> = output_blocks(text)
        .into_iter()
        .filter(|b| b.iter().any(|l| l.starts_with("Plan: ")))
        .collect();
    assert!(
        !samples.is_empty(),
        "README shows no sample of `mailplan plan {QUICKSTART}`"
    );
    samples
}

#[test]
fn readme_plan_line_is_what_plan_prints() {
    let output = quickstart_plan();
    let real = line_starting(&output, "Plan: ");
    for sample in plan_samples(&readme()) {
        let shown = sample.iter().find(|l| l.starts_with("Plan: ")).unwrap();
        assert_eq!(*shown, real, "README's `Plan:` line is stale");
    }
}

#[test]
fn readme_deletions_line_is_what_plan_prints() {
    let output = quickstart_plan();
    let real = line_starting(&output, "Deletions: ");
    let text = readme();
    for sample in plan_samples(&text) {
        for shown in sample.iter().filter(|l| l.starts_with("Deletions: ")) {
            assert_eq!(*shown, real, "README's `Deletions:` line is stale");
        }
    }
    // Quoted in prose too, where it may be wrapped across lines.
    let prose = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut quoted = 0;
    for piece in prose.split("`Deletions: ").skip(1) {
        let shown = format!("Deletions: {}", piece.split('`').next().unwrap());
        assert_eq!(shown, real, "README quotes a stale `Deletions:` line");
        quoted += 1;
    }
    assert!(quoted > 0, "README no longer quotes the `Deletions:` line");
}

/// Every other line of the sample (but `...`, which stands for lines left out) is a line
/// the command prints, in the same order.
#[test]
fn readme_plan_sample_lines_appear_in_order() {
    let output = quickstart_plan();
    for sample in plan_samples(&readme()) {
        let mut real = output.lines();
        for shown in sample {
            let shown = shown.trim_end();
            if shown.is_empty() || shown.trim() == "..." {
                continue;
            }
            assert!(
                real.any(|l| l.trim_end() == shown),
                "README's sample line {shown:?} is not printed (in this order) by \
                 `mailplan plan {QUICKSTART}`:\n{output}"
            );
        }
    }
}

/// The output of `mailplan report` on the quickstart example in `format`.
fn quickstart_report(format: &str) -> String {
    let out = Command::cargo_bin("mailplan")
        .unwrap()
        .current_dir(root())
        .env("NO_COLOR", "1")
        .args(["report", QUICKSTART, "--format", format])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mailplan report {QUICKSTART} --format {format} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The bodies of README's fenced blocks whose language is `language`.
fn blocks_in(text: &str, language: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut current: Option<(bool, Vec<String>)> = None;
    for line in text.lines() {
        let fence = line.trim_start().strip_prefix("```");
        match (current.take(), fence) {
            (None, Some(info)) => current = Some((info.trim() == language, Vec::new())),
            (Some((wanted, block)), Some(_)) => {
                if wanted {
                    blocks.push(block);
                }
            }
            (Some((wanted, mut block)), None) => {
                block.push(line.to_string());
                current = Some((wanted, block));
            }
            (None, None) => {}
        }
    }
    blocks
}

/// Every line of README's `language` excerpts (but `...`) is printed by `report --format
/// format`, in the same order.
fn excerpts_are_printed(language: &str, format: &str) {
    let output = quickstart_report(format);
    let samples = blocks_in(&readme(), language);
    assert!(
        !samples.is_empty(),
        "README shows no {language} excerpt of `mailplan report`"
    );
    for sample in samples {
        let mut real = output.lines();
        for shown in &sample {
            let shown = shown.trim_end();
            if shown.is_empty() || shown.trim() == "..." {
                continue;
            }
            assert!(
                real.any(|l| l.trim_end() == shown),
                "README's {language} excerpt line {shown:?} is not printed (in this order) by \
                 `mailplan report {QUICKSTART} --format {format}`:\n{output}"
            );
        }
    }
}

#[test]
fn readme_markdown_report_excerpt_is_what_report_prints() {
    excerpts_are_printed("markdown", "markdown");
}

#[test]
fn readme_csv_report_excerpt_is_what_report_prints() {
    excerpts_are_printed("csv", "csv");
}

/// README describes the HTML report without a screenshot: every heading and chart caption the
/// page has is named there, in the page's order.
#[test]
fn readme_describes_every_part_of_the_html_report() {
    let html = quickstart_report("html");
    let mut headings = Vec::new();
    for (open, close) in [
        ("<h1>", "</h1>"),
        ("<h2>", "</h2>"),
        ("<figcaption>", "</figcaption>"),
    ] {
        for (at, _) in html.match_indices(open) {
            let rest = &html[at + open.len()..];
            headings.push((at, rest.split(close).next().unwrap().to_string()));
        }
    }
    headings.sort();
    assert!(
        headings.len() >= 7,
        "the HTML report lost its parts:\n{html}"
    );
    let text = readme();
    let start = text
        .find("HTML (`--format html")
        .expect("README describes the HTML report");
    let description = text[start..].split("\n\n").next().unwrap();
    let description = description.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut from = 0;
    for (_, heading) in headings {
        let quoted = format!("\"{heading}\"");
        let at = description[from..].find(&quoted).unwrap_or_else(|| {
            panic!("README's description of the HTML report does not name {quoted} (in order)")
        });
        from += at + quoted.len();
    }
}

/// The Carbonio walk-through's sample `Plan:` line is what `mailplan plan` prints for the
/// Carbonio example, and its sample batch lines are lines `--format carbonio-prov` prints, in
/// the same order.
#[test]
fn readme_carbonio_samples_are_what_mailplan_prints() {
    let (_, section, _) = split_carbonio(&full_readme());
    let blocks = output_blocks(&section);
    let output = output_of(&["plan", CARBONIO]);
    let real = line_starting(&output, "Plan: ");
    let plan_lines: Vec<&&str> = blocks
        .iter()
        .flatten()
        .filter(|l| l.starts_with("Plan: "))
        .collect();
    assert_eq!(
        plan_lines.len(),
        1,
        "one `Plan:` sample in the walk-through"
    );
    assert_eq!(
        *plan_lines[0], real,
        "the walk-through's `Plan:` line is stale"
    );

    let batch = output_of(&["plan", CARBONIO, "--format", "carbonio-prov"]);
    let sample = blocks
        .iter()
        .find(|b| b.iter().any(|l| l.starts_with("createAccount ")))
        .expect("the walk-through shows no batch sample");
    let mut real = batch.lines();
    for shown in sample {
        let shown = shown.trim_end();
        if shown.is_empty() || shown == "..." {
            continue;
        }
        assert!(
            real.any(|l| l == shown),
            "the walk-through's batch line {shown:?} is not printed (in this order):\n{batch}"
        );
    }
}
