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

use datafusion::prelude::SessionContext;

use crate::scoring::Scorer;

/// Registers every dumn function on `ctx`; the model functions without a model.
pub fn register(ctx: &SessionContext) {
    ctx.register_udaf(recent::dumn_recent());
    ctx.register_udwf(history::dumn_history());
    register_model(ctx, None);
}

/// (Re-)registers `dumn_ctr`, `dumn_dislike` and `dumn_score`, backed by `scorer`.
pub fn register_model(ctx: &SessionContext, scorer: Option<Arc<Scorer>>) {
    for f in score::functions(scorer) {
        ctx.register_udf(f);
    }
}
