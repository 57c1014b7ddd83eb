//! dumn's DataFusion functions, and the one place that registers them: on a session
//! ([`register`], [`register_model`]), on a cluster scheduler's sessions and on an
//! executor ([`Functions`]).
//!
//! | function | kind | file |
//! | --- | --- | --- |
//! | `dumn_recent(item_id, ts [, n])` | aggregate: a feedback sequence, newest first | `udfs/recent.rs` |
//! | `dumn_history(item_id, ts, n) OVER (… ORDER BY ts)` | window: each row's sequence strictly before it | `udfs/history.rs` |
//! | `dumn_ctr(…)`, `dumn_dislike(…)`, `dumn_score(…)`, `dumn_model_version()` | scalar: the model's click and dislike probabilities, and its version | `udfs/score.rs` |

pub mod history;
pub mod recent;
pub mod score;

use std::sync::Arc;

use ballista_core::registry::BallistaFunctionRegistry;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF, WindowUDF};
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
            window: vec![history::dumn_history()],
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
    }
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
