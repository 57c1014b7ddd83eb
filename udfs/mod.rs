//! dumn's DataFusion functions, and the one place that registers them: on a session
//! ([`register`], [`register_model`]), on a cluster scheduler's sessions and on an
//! executor ([`Functions`]).
//!
//! | function | kind | file |
//! | --- | --- | --- |
//! | `dumn_recent(item_id, ts [, n])` | aggregate: a feedback sequence, newest first | `udfs/recent.rs` |
//! | `dumn_history(item_id, ts, n) OVER (… ORDER BY ts)` | window: each row's sequence strictly before it | `udfs/history.rs` |
//! | `dumn_rank(item_id) OVER (… ORDER BY ctr DESC, item_id)` | window: `ROW_NUMBER()` counting each item once | `udfs/rank.rs` |
//! | `dumn_ctr(…)`, `dumn_dislike(…)`, `dumn_score(…)`, `dumn_model_version()` | scalar: the model's click and dislike probabilities, and its version | `udfs/score.rs` |
//! | `dumn_predict('TABLE')` | table: TABLE's rows with `ctr` and `p_dislike`, inputs matched by name | `udfs/predict.rs` |
//!
//! Each function carries its documentation (DataFusion's [`Documentation`]): `\df` at the
//! `dumn sql` prompt lists them ([`documented`]) and `\df NAME` prints one ([`describe`]).

pub mod history;
pub mod predict;
pub mod rank;
pub mod recent;
pub mod score;

use std::sync::Arc;

use ballista_core::registry::BallistaFunctionRegistry;
use datafusion::execution::session_state::SessionState;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{AggregateUDF, DocSection, Documentation, ScalarUDF, WindowUDF};
use datafusion::prelude::SessionContext;

use crate::model::scorer::Scorer;

/// A set of dumn functions, by kind.
pub struct Functions {
    pub scalar: Vec<ScalarUDF>,
    pub aggregate: Vec<AggregateUDF>,
    pub window: Vec<WindowUDF>,
}

impl Functions {
    /// Every dumn function; the model's backed by `scorer` (without one, planning a call of
    /// them is an error that says how to give a model).
    pub fn all(scorer: Option<Arc<Scorer>>) -> Self {
        Self {
            scalar: score::functions(scorer),
            aggregate: vec![recent::dumn_recent()],
            window: vec![history::dumn_history(), rank::dumn_rank()],
        }
    }

    /// Only the model's functions, backed by `scorer`.
    pub fn model(scorer: Option<Arc<Scorer>>) -> Self {
        Self {
            scalar: score::functions(scorer),
            aggregate: Vec::new(),
            window: Vec::new(),
        }
    }

    /// Registers the functions in `registry` (a session state), replacing any of the same
    /// name.
    pub fn register_into(
        self,
        registry: &mut dyn FunctionRegistry,
    ) -> datafusion::common::Result<()> {
        for u in self.aggregate {
            registry.register_udaf(Arc::new(u))?;
        }
        for u in self.window {
            registry.register_udwf(Arc::new(u))?;
        }
        for u in self.scalar {
            registry.register_udf(Arc::new(u))?;
        }
        Ok(())
    }

    /// The functions as a Ballista executor's registry (executors look functions up by
    /// name in it).
    pub fn into_ballista_registry(self) -> BallistaFunctionRegistry {
        let mut registry = BallistaFunctionRegistry::default();
        for u in self.scalar {
            registry
                .scalar_functions
                .insert(u.name().to_string(), Arc::new(u));
        }
        for u in self.aggregate {
            registry
                .aggregate_functions
                .insert(u.name().to_string(), Arc::new(u));
        }
        for u in self.window {
            registry
                .window_functions
                .insert(u.name().to_string(), Arc::new(u));
        }
        registry
    }

    fn register_on(self, ctx: &SessionContext) {
        self.register_into(&mut *ctx.state_ref().write())
            .expect("a session state accepts every function");
        ctx.register_udtf(predict::NAME, Arc::new(predict::DumnPredict));
    }
}

/// The section dumn's functions are documented under.
fn doc_section() -> DocSection {
    DocSection {
        include: true,
        label: "dumn",
        description: Some("dumn's functions: feedback sequences and the DUMN model"),
    }
}

/// One of dumn's functions, as `\df` lists it.
#[derive(Debug, Clone)]
pub struct FunctionDoc {
    pub name: String,
    /// scalar, aggregate, window or table.
    pub kind: &'static str,
    pub doc: Documentation,
}

/// dumn's functions known to `state` (the model's with its argument names when a model is
/// loaded), sorted by name.
pub fn documented(state: &SessionState) -> Vec<FunctionDoc> {
    let mut out = Vec::new();
    let mut add = |name: &str, kind, doc: Option<&Documentation>| {
        if let Some(doc) = doc.filter(|_| name.starts_with("dumn_")) {
            out.push(FunctionDoc {
                name: name.to_string(),
                kind,
                doc: doc.clone(),
            });
        }
    };
    for (name, f) in state.scalar_functions() {
        add(name, "scalar", f.documentation());
    }
    for (name, f) in state.aggregate_functions() {
        add(name, "aggregate", f.documentation());
    }
    for (name, f) in state.window_functions() {
        add(name, "window", f.documentation());
    }
    if state.table_functions().contains_key(predict::NAME) {
        add(predict::NAME, "table", Some(predict::documentation()));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// A function's documentation as text: how to call it, what it returns, each argument and
/// an example.
pub fn describe(doc: &Documentation) -> String {
    let mut text = format!("{}\n\n{}\n", doc.syntax_example, doc.description);
    if let Some(args) = &doc.arguments {
        let width = args.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        text.push_str("\nArguments:\n");
        for (name, what) in args {
            text.push_str(&format!("  {name:<width$}  {what}\n"));
        }
    }
    if let Some(example) = &doc.sql_example {
        text.push_str(&format!(
            "\nExample:\n  {}\n",
            example.replace('\n', "\n  ")
        ));
    }
    text
}

/// Registers every dumn function on `ctx`; the model functions without a model.
pub fn register(ctx: &SessionContext) {
    Functions::all(None).register_on(ctx);
}

/// (Re-)registers `dumn_ctr`, `dumn_dislike`, `dumn_score` and `dumn_model_version`,
/// backed by `scorer`.
pub fn register_model(ctx: &SessionContext, scorer: Option<Arc<Scorer>>) {
    Functions::model(scorer).register_on(ctx);
}
