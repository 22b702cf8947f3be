//! Keeps docs/plugins.md honest: every built-in plugin has its section, and the priority table says
//! what the code runs.

use std::path::Path;

use floodgate_plugins::PLUGIN_PRIORITIES;

fn plugins_md() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/plugins.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_plugin_has_a_section_and_its_priority_in_the_table() {
    let doc = plugins_md();
    for (name, priority) in PLUGIN_PRIORITIES {
        assert!(
            doc.lines().any(|l| l == format!("## `{name}`")),
            "docs/plugins.md has no section \"## `{name}`\""
        );
        let row = format!("| {priority} | [`{name}`](#{name}) |");
        assert!(
            doc.lines().any(|l| l.starts_with(&row)),
            "docs/plugins.md's priority table has no row starting {row:?}"
        );
    }
}

#[test]
fn the_table_lists_no_plugin_the_code_does_not_have() {
    let doc = plugins_md();
    let rows = doc
        .lines()
        .filter(|l| {
            l.starts_with("| ")
                && l.contains("](#")
                && l.split('|')
                    .nth(1)
                    .is_some_and(|c| c.trim().parse::<u16>().is_ok())
        })
        .count();
    assert_eq!(rows, PLUGIN_PRIORITIES.len());
}
