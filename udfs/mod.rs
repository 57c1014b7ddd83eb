//! dumn's DataFusion functions, registered on every session ([`register`]).
//!
//! | function | kind | file |
//! | --- | --- | --- |
//! | `dumn_recent(item_id, ts [, n])` | aggregate: a feedback sequence, newest first | `udfs/recent.rs` |
//! | `dumn_history(item_id, ts, n) OVER (… ORDER BY ts)` | window: each row's sequence strictly before it | `udfs/history.rs` |
//! | `dumn_ctr(…)`, `dumn_dislike(…)`, `dumn_score(…)` | scalar: the model's click and dislike probabilities | `udfs/score.rs` |

pub mod history;
pub mod recent;
pub mod score;

use std::sync::Arc;

use datafusion::logical_expr::{AggregateUDF, ScalarUDF, WindowUDF};
use datafusion::prelude::SessionContext;

use crate::scoring::Scorer;

/// Every dumn function, by kind: what a session registers, and what a cluster's scheduler
/// and executors must know by name (`src/cluster.rs`).
pub struct Functions {
    pub scalar: Vec<ScalarUDF>,
    pub aggregate: Vec<AggregateUDF>,
    pub window: Vec<WindowUDF>,
}

/// Every dumn function; the model's backed by `scorer` (without one, planning a call of
/// them is an error that says how to give a model).
pub fn all(scorer: Option<Arc<Scorer>>) -> Functions {
    Functions {
        scalar: score::functions(scorer),
        aggregate: vec![recent::dumn_recent()],
        window: vec![history::dumn_history()],
    }
}

/// Registers every dumn function on `ctx`; the model functions without a model.
pub fn register(ctx: &SessionContext) {
    let f = all(None);
    f.aggregate.into_iter().for_each(|u| ctx.register_udaf(u));
    f.window.into_iter().for_each(|u| ctx.register_udwf(u));
    f.scalar.into_iter().for_each(|u| ctx.register_udf(u));
}

/// (Re-)registers `dumn_ctr`, `dumn_dislike` and `dumn_score`, backed by `scorer`.
pub fn register_model(ctx: &SessionContext, scorer: Option<Arc<Scorer>>) {
    for f in score::functions(scorer) {
        ctx.register_udf(f);
    }
}
