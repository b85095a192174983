//! The Grafana dashboard's queries as Prometheus will see them: every panel target's `expr`,
//! with Grafana's variables replaced by values valid in PromQL, written as recording rules so
//! `promtool check rules` parses each one.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

/// What a dashboard variable becomes: valid as a label value and as a regex (`=` and `=~`).
const LABEL_PLACEHOLDER: &str = ".+";

/// Grafana's built-in variables that can stand in a PromQL query, with a value of the right
/// kind: a duration where Grafana puts one, a number for the `_ms` and `_s` forms.
const BUILT_INS: [(&str, &str); 6] = [
    ("__rate_interval", "1m"),
    ("__interval", "15s"),
    ("__range", "1h"),
    ("__interval_ms", "15000"),
    ("__range_ms", "3600000"),
    ("__range_s", "3600"),
];

/// One panel target's query.
#[derive(Debug, PartialEq, Eq)]
pub struct PanelQuery {
    pub panel_id: u64,
    pub panel_title: String,
    pub ref_id: String,
    pub expr: String,
}

/// Every panel target's query, rows' nested panels included, in the dashboard's order.
/// Grafana's server-side expressions (datasource `__expr__`) are not PromQL and are left out.
pub fn queries(dashboard: &Value) -> Result<Vec<PanelQuery>> {
    let mut found = Vec::new();
    let mut ids = BTreeSet::new();
    collect(
        dashboard
            .get("panels")
            .context("the dashboard has no panels")?,
        &mut found,
        &mut ids,
    )?;
    ensure!(!found.is_empty(), "the dashboard's panels have no queries");
    Ok(found)
}

fn collect(panels: &Value, found: &mut Vec<PanelQuery>, ids: &mut BTreeSet<u64>) -> Result<()> {
    let panels = panels.as_array().context("`panels` is not a list")?;
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or_default().to_owned();
        let id = panel["id"]
            .as_u64()
            .with_context(|| format!("panel {title:?} has no numeric id"))?;
        ensure!(ids.insert(id), "two panels have the id {id}");
        if let Some(nested) = panel.get("panels") {
            collect(nested, found, ids)?;
        }
        let Some(targets) = panel.get("targets") else {
            continue;
        };
        for target in targets.as_array().context("`targets` is not a list")? {
            if target["datasource"]["type"] == "__expr__" {
                continue;
            }
            let ref_id = target["refId"].as_str().unwrap_or("?").to_owned();
            let expr = target["expr"]
                .as_str()
                .filter(|expr| !expr.trim().is_empty())
                .with_context(|| format!("panel {id} ({title:?}), query {ref_id}: no `expr`"))?;
            found.push(PanelQuery {
                panel_id: id,
                panel_title: title.clone(),
                ref_id,
                expr: expr.to_owned(),
            });
        }
    }
    Ok(())
}

/// The value each of the dashboard's own variables (`templating.list`) takes for the check.
pub fn variables(dashboard: &Value) -> BTreeMap<String, String> {
    let list = dashboard["templating"]["list"].as_array();
    list.into_iter()
        .flatten()
        .filter_map(|variable| variable["name"].as_str())
        .map(|name| (name.to_owned(), LABEL_PLACEHOLDER.to_owned()))
        .collect()
}

/// `expr` with every Grafana variable (`$name`, `${name}`, `${name:format}`, `[[name]]`)
/// replaced: the built-ins by a duration or number, the dashboard's own from `variables`. An
/// unknown variable is an error: Grafana would leave it in the query and Prometheus refuse it.
pub fn substitute(expr: &str, variables: &BTreeMap<String, String>) -> Result<String> {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(at) = rest.find(['$', '[']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        match variable_at(tail) {
            Some((name, len)) => {
                let value = BUILT_INS
                    .iter()
                    .find(|(built_in, _)| *built_in == name)
                    .map(|(_, value)| *value)
                    .or_else(|| variables.get(name).map(String::as_str))
                    .with_context(|| format!("unknown Grafana variable `{}`", &tail[..len]))?;
                out.push_str(value);
                rest = &tail[len..];
            }
            None => {
                out.push_str(&tail[..1]);
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The variable's name and the length of its reference, if `text` starts with one.
fn variable_at(text: &str) -> Option<(&str, usize)> {
    if let Some(body) = text.strip_prefix("${") {
        braced(body, "}")
    } else if let Some(body) = text.strip_prefix("[[") {
        braced(body, "]]")
    } else if let Some(body) = text.strip_prefix('$') {
        let len = name_len(body);
        (len > 0).then(|| (&body[..len], 1 + len))
    } else {
        None
    }
}

/// `name}` or `name:format}` (with `close` for `}`) after a two-character opening.
fn braced<'a>(body: &'a str, close: &str) -> Option<(&'a str, usize)> {
    let end = body.find(close)?;
    let name = body[..end].split(':').next().unwrap_or_default();
    (!name.is_empty() && name_len(name) == name.len()).then_some((name, 2 + end + close.len()))
}

/// How many of `text`'s first characters can make a variable's name.
fn name_len(text: &str) -> usize {
    text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len())
}

/// The recording rule's name for a query: a valid metric name that says which panel it is.
pub fn record_name(query: &PanelQuery) -> String {
    let ref_id: String = query
        .ref_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("dashboard:panel_{}_{ref_id}", query.panel_id)
}

/// A rules file with one recording rule per query, each with its variables substituted. YAML
/// scalars are written as JSON strings, which YAML reads as the same double-quoted strings.
pub fn rules_file(
    source: &str,
    queries: &[PanelQuery],
    variables: &BTreeMap<String, String>,
) -> Result<String> {
    let quote = |text: &str| serde_json::to_string(text).expect("a string serializes");
    let mut out = format!(
        "# Generated by `cargo xtask monitoring` from {source}: each panel query as a recording\n\
         # rule, so promtool parses it as Prometheus would.\n\
         groups:\n  - name: grafana-dashboard\n    rules:\n"
    );
    let mut names = BTreeSet::new();
    for query in queries {
        let expr = substitute(&query.expr, variables).with_context(|| {
            format!(
                "panel {} ({:?}), query {}",
                query.panel_id, query.panel_title, query.ref_id
            )
        })?;
        let name = record_name(query);
        if !names.insert(name.clone()) {
            bail!("two queries of panel {} are named {name}", query.panel_id);
        }
        out.push_str(&format!(
            "      # panel {} {}, query {}\n      - record: {}\n        expr: {}\n",
            query.panel_id,
            quote(&query.panel_title),
            query.ref_id,
            quote(&name),
            quote(&expr),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn vars(names: &[&str]) -> BTreeMap<String, String> {
        names
            .iter()
            .map(|name| ((*name).to_owned(), LABEL_PLACEHOLDER.to_owned()))
            .collect()
    }

    #[test]
    fn every_form_of_a_variable_is_replaced() {
        let instance = vars(&["instance"]);
        assert_eq!(
            substitute(
                r#"rate(x{instance=~"$instance", a="${instance}", b="${instance:regex}", c="[[instance]]"}[$__rate_interval])"#,
                &instance
            )
            .unwrap(),
            r#"rate(x{instance=~".+", a=".+", b=".+", c=".+"}[1m])"#
        );
    }

    #[test]
    fn built_ins_become_durations_or_numbers_by_their_name() {
        let none = BTreeMap::new();
        assert_eq!(
            substitute(
                "avg_over_time(x[$__interval]) * $__interval_ms + $__range_s + y[$__range]",
                &none
            )
            .unwrap(),
            "avg_over_time(x[15s]) * 15000 + 3600 + y[1h]"
        );
        // The longest name wins: `$__interval_ms` is not `$__interval` followed by `_ms`.
        assert_eq!(substitute("$__interval_ms", &none).unwrap(), "15000");
    }

    #[test]
    fn dollars_and_brackets_that_are_not_variables_stay() {
        let none = BTreeMap::new();
        let expr = r#"x{job=~"lease.*$"}[5m] + y{a="$"} + z[1m:10s] + "[[" "#;
        assert_eq!(substitute(expr, &none).unwrap(), expr);
    }

    #[test]
    fn an_unknown_variable_is_refused_with_its_name() {
        let err = substitute(r#"x{instance="$instnace"}"#, &vars(&["instance"])).unwrap_err();
        assert_eq!(err.to_string(), "unknown Grafana variable `$instnace`");
        let err = substitute("x[${__nope}]", &BTreeMap::new()).unwrap_err();
        assert_eq!(err.to_string(), "unknown Grafana variable `${__nope}`");
    }

    fn dashboard() -> Value {
        json!({
            "templating": {"list": [
                {"name": "DS_PROMETHEUS", "type": "datasource"},
                {"name": "instance", "type": "query"}
            ]},
            "panels": [
                {"id": 1, "type": "row", "title": "Pool", "panels": [
                    {"id": 2, "title": "Collapsed", "targets": [
                        {"refId": "A", "expr": "a{instance=\"$instance\"}"}
                    ]}
                ]},
                {"id": 3, "title": "Pool connections", "targets": [
                    {"refId": "A", "expr": "b"},
                    {"refId": "B", "expr": "rate(c[$__rate_interval])"},
                    {"refId": "C", "datasource": {"type": "__expr__"}, "expression": "$A + $B"}
                ]},
                {"id": 4, "type": "text", "title": "Notes"}
            ]
        })
    }

    #[test]
    fn queries_are_found_in_rows_and_panels_in_order() {
        let found = queries(&dashboard()).unwrap();
        let summary: Vec<_> = found
            .iter()
            .map(|q| (q.panel_id, q.ref_id.as_str(), q.expr.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (2, "A", "a{instance=\"$instance\"}"),
                (3, "A", "b"),
                (3, "B", "rate(c[$__rate_interval])"),
            ]
        );
        assert_eq!(found[1].panel_title, "Pool connections");
    }

    #[test]
    fn a_target_without_an_expression_or_a_repeated_id_is_refused() {
        let mut no_expr = dashboard();
        no_expr["panels"][1]["targets"][0]["expr"] = json!("  ");
        assert_eq!(
            queries(&no_expr).unwrap_err().to_string(),
            "panel 3 (\"Pool connections\"), query A: no `expr`"
        );
        let mut twice = dashboard();
        twice["panels"][2]["id"] = json!(3);
        assert_eq!(
            queries(&twice).unwrap_err().to_string(),
            "two panels have the id 3"
        );
        assert!(
            queries(&json!({"panels": []})).is_err(),
            "no queries at all"
        );
    }

    #[test]
    fn the_rules_file_records_each_query_with_its_variables_substituted() {
        let dashboard = dashboard();
        let file = rules_file(
            "leasewatch.json",
            &queries(&dashboard).unwrap(),
            &variables(&dashboard),
        )
        .unwrap();
        assert!(file.contains("groups:\n  - name: grafana-dashboard\n    rules:\n"));
        assert!(file.contains(
            "      # panel 2 \"Collapsed\", query A\n      - record: \"dashboard:panel_2_A\"\n        expr: \"a{instance=\\\".+\\\"}\"\n"
        ), "{file}");
        assert!(file.contains("expr: \"rate(c[1m])\""), "{file}");
        assert_eq!(file.matches("- record:").count(), 3);
        assert!(!file.contains('$'), "every variable substituted:\n{file}");
    }

    #[test]
    fn the_rules_file_names_the_panel_of_a_query_with_an_unknown_variable() {
        let mut dashboard = dashboard();
        dashboard["panels"][1]["targets"][0]["expr"] = json!("b[$window]");
        let err = rules_file(
            "leasewatch.json",
            &queries(&dashboard).unwrap(),
            &variables(&dashboard),
        )
        .unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "panel 3 (\"Pool connections\"), query A: unknown Grafana variable `$window`"
        );
    }

    #[test]
    fn record_names_are_metric_names() {
        let query = PanelQuery {
            panel_id: 12,
            panel_title: String::new(),
            ref_id: "p95 latency".to_owned(),
            expr: String::new(),
        };
        assert_eq!(record_name(&query), "dashboard:panel_12_p95_latency");
    }
}
