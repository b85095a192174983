//! A `WHERE` clause built at run time from the fields a search gives, with every value bound
//! to a numbered parameter (`$1`, `$2`, …: both backends read them), never written into the
//! text.

use sqlx::{
    Any,
    any::AnyArguments,
    query::{Query, QueryAs},
};

/// A value bound to a parameter.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Text(String),
    Int(i64),
}

/// The conditions of a search, all of which must hold, and their values in order.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    conditions: Vec<String>,
    binds: Vec<Bind>,
}

impl Filter {
    /// A parameter for `value`: its placeholder, to write into a condition or a `LIMIT`.
    pub(crate) fn param(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    /// Adds `condition`, written with placeholders from [`Filter::param`].
    pub(crate) fn and(&mut self, condition: String) {
        self.conditions.push(condition);
    }

    /// `column op $n` for `value`, when given.
    pub(crate) fn compare(&mut self, column: &str, op: &str, value: Option<Bind>) {
        if let Some(value) = value {
            let param = self.param(value);
            self.and(format!("{column} {op} {param}"));
        }
    }

    /// `WHERE …`, or nothing without conditions.
    pub(crate) fn where_clause(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conditions.join(" AND "))
        }
    }

    /// `query` with the values bound, in order.
    pub(crate) fn bind<'q>(
        self,
        query: Query<'q, Any, AnyArguments>,
    ) -> Query<'q, Any, AnyArguments> {
        self.binds
            .into_iter()
            .fold(query, |query, bind| match bind {
                Bind::Text(text) => query.bind(text),
                Bind::Int(n) => query.bind(n),
            })
    }

    /// `query` with the values bound, in order.
    pub(crate) fn bind_as<'q, O>(
        self,
        query: QueryAs<'q, Any, O, AnyArguments>,
    ) -> QueryAs<'q, Any, O, AnyArguments> {
        self.binds
            .into_iter()
            .fold(query, |query, bind| match bind {
                Bind::Text(text) => query.bind(text),
                Bind::Int(n) => query.bind(n),
            })
    }
}
