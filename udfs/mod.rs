//! dumn's DataFusion functions, registered on every session ([`register`]).
//!
//! | function | kind | file |
//! | --- | --- | --- |
//! | `dumn_recent(item_id, ts [, n])` | aggregate: a feedback sequence, newest first | `udfs/recent.rs` |
//! | `dumn_history(item_id, ts, n) OVER (… ORDER BY ts)` | window: each row's sequence strictly before it | `udfs/history.rs` |

pub mod history;
pub mod recent;

use datafusion::prelude::SessionContext;

/// Registers every dumn function on `ctx`.
pub fn register(ctx: &SessionContext) {
    ctx.register_udaf(recent::dumn_recent());
    ctx.register_udwf(history::dumn_history());
}
