//! `dumn_history(item_id, ts, n) OVER (PARTITION BY user_id ORDER BY ts)`: a window
//! function that gives every row the user's sequence strictly before it.
//!
//! Contract: for each row of a partition ordered by `ts`, returns the non-NULL `item_id`s
//! of the partition's rows whose `ts` is strictly earlier than this row's, newest first
//! (equal `ts`: larger `item_id` first), at most `n` of them; an empty list (never NULL)
//! when there are none. Rows at the same `ts` never see each other. `n` must be a positive
//! integer literal; `ts` a timestamp of any unit or an integer; the result is
//! `List(Int64)`. The window's ORDER BY must be `ts` (ascending): rows out of order are an
//! error. To build one kind of sequence from a stream of all kinds, pass
//! `CASE WHEN kind = '…' THEN item_id END` (window functions take no FILTER).
//!
//! The partition is read once, keeping the newest `2n` pairs, so the work is linear in
//! the output.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, ListArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion::logical_expr::{
    Documentation, PartitionEvaluator, Signature, TypeSignature, Volatility, WindowUDF,
    WindowUDFImpl,
};
use datafusion::physical_expr::expressions::Literal;

/// The function's SQL name.
pub const NAME: &str = "dumn_history";

/// The `dumn_history` window function, ready to register.
pub fn dumn_history() -> WindowUDF {
    WindowUDF::from(DumnHistory {
        signature: Signature::one_of(vec![TypeSignature::Any(3)], Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DumnHistory {
    signature: Signature,
}

/// What `\df dumn_history` prints.
fn documentation() -> &'static Documentation {
    static DOC: std::sync::LazyLock<Documentation> = std::sync::LazyLock::new(|| {
        Documentation::builder(
            super::doc_section(),
            "A window function: each row's sequence of the partition's item ids strictly \
             before its ts, newest first, at most n. Returns List(Int64).",
            "dumn_history(item_id, ts, n) OVER (PARTITION BY user_id ORDER BY ts)",
        )
        .with_argument(
            "item_id",
            "an integer column; NULL rows are skipped (use CASE WHEN to pick one kind)",
        )
        .with_argument("ts", "a timestamp or integer column, the window's ORDER BY")
        .with_argument("n", "positive integer literal: the most items kept")
        .build()
    });
    &DOC
}

impl WindowUDFImpl for DumnHistory {
    fn documentation(&self) -> Option<&Documentation> {
        Some(documentation())
    }

    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn field(&self, args: WindowUDFFieldArgs) -> Result<FieldRef> {
        let t = |i: usize| args.get_input_field(i).map(|f| f.data_type().clone());
        match t(0) {
            Some(t) if t.is_integer() || t.is_null() => {}
            other => {
                return plan_err!(
                    "{NAME}: the first argument (item_id) must be an integer, got {other:?}"
                )
            }
        }
        match t(1) {
            Some(DataType::Timestamp(_, _)) => {}
            Some(t) if t.is_integer() => {}
            other => {
                return plan_err!(
                    "{NAME}: the second argument (ts) must be a timestamp, got {other:?}"
                )
            }
        }
        Ok(Arc::new(Field::new(
            args.name(),
            DataType::new_list(DataType::Int64, true),
            false,
        )))
    }

    fn partition_evaluator(
        &self,
        args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        let n = match args
            .input_exprs()
            .get(2)
            .and_then(|e| e.downcast_ref::<Literal>())
        {
            Some(lit) => match lit.value().cast_to(&DataType::Int64)? {
                ScalarValue::Int64(Some(n)) if n > 0 => n as usize,
                other => return plan_err!("{NAME}: n must be a positive integer, got {other}"),
            },
            None => return plan_err!("{NAME}: the third argument (n) must be a literal integer"),
        };
        Ok(Box::new(Evaluator { n }))
    }
}

#[derive(Debug)]
struct Evaluator {
    n: usize,
}

fn as_i64(a: &ArrayRef) -> Result<Int64Array> {
    Ok(cast(a, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .clone())
}

impl PartitionEvaluator for Evaluator {
    fn evaluate_all(&mut self, values: &[ArrayRef], num_rows: usize) -> Result<ArrayRef> {
        let (items, ts) = (as_i64(&values[0])?, as_i64(&values[1])?);
        let n = self.n;
        // The partition's pairs so far, ascending by (ts, item); at most 2n kept.
        let mut seen: Vec<(i64, i64)> = Vec::new();
        let mut group: Vec<(i64, i64)> = Vec::new();
        let mut out: Vec<i64> = Vec::new();
        let mut lengths: Vec<usize> = Vec::with_capacity(num_rows);
        let mut i = 0;
        while i < num_rows {
            if ts.is_null(i) {
                // No time, no place in the history: an empty sequence, and it adds nothing.
                lengths.push(0);
                i += 1;
                continue;
            }
            let t = ts.value(i);
            if let Some(&(last, _)) = seen.last() {
                if t < last {
                    return exec_err!(
                        "{NAME}: rows must arrive ordered by ts; write OVER (PARTITION BY … ORDER BY ts)"
                    );
                }
            }
            // Rows i..j share the time t: each gets the newest n strictly before t.
            let mut j = i;
            group.clear();
            while j < num_rows && ts.is_valid(j) && ts.value(j) == t {
                if items.is_valid(j) {
                    group.push((t, items.value(j)));
                }
                j += 1;
            }
            let start = seen.len().saturating_sub(n);
            for _ in i..j {
                out.extend(seen[start..].iter().rev().map(|e| e.1));
                lengths.push(seen.len() - start);
            }
            group.sort_unstable();
            seen.extend_from_slice(&group);
            if seen.len() >= 2 * n.max(8) {
                seen.drain(..seen.len() - n);
            }
            i = j;
        }
        Ok(Arc::new(ListArray::new(
            Arc::new(Field::new_list_field(DataType::Int64, true)),
            OffsetBuffer::from_lengths(lengths),
            Arc::new(Int64Array::from(out)),
            None,
        )))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Int64Type;
    use datafusion::prelude::{SessionConfig, SessionContext};

    async fn lists(sql: &str) -> Vec<Vec<i64>> {
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(3));
        ctx.register_udwf(super::dumn_history());
        let mut out = Vec::new();
        for b in ctx.sql(sql).await.unwrap().collect().await.unwrap() {
            let l = b.column(0).as_list::<i32>();
            for i in 0..l.len() {
                out.push(l.value(i).as_primitive::<Int64Type>().values().to_vec());
            }
        }
        out
    }

    #[tokio::test]
    async fn strictly_before_newest_first_capped() {
        // User 1 at times 1, 2, 2, 3, 5 (item 13 has a NULL id); n = 2.
        let got = lists(
            "SELECT dumn_history(item, ts, 2) OVER (PARTITION BY u ORDER BY ts) FROM \
             (VALUES (1, 10, 1), (1, 11, 2), (1, 12, 2), (1, NULL, 3), (1, 14, 5), (2, 20, 4)) AS t(u, item, ts) \
             ORDER BY u, ts, item",
        )
        .await;
        assert_eq!(
            got,
            vec![
                vec![],       // t=1: nothing before
                vec![10],     // t=2 (item 11): 12 is at the same time, not before
                vec![10],     // t=2 (item 12)
                vec![12, 11], // t=3 (NULL item row): the newest two, ties by larger id
                vec![12, 11], // t=5: the NULL item adds nothing
                vec![],       // user 2
            ]
        );
    }

    #[tokio::test]
    async fn many_rows_keep_only_the_newest() {
        let got = lists(
            "SELECT dumn_history(v, v, 3) OVER (ORDER BY v) FROM \
             (SELECT value AS v FROM generate_series(1, 50000)) ORDER BY v DESC LIMIT 1",
        )
        .await;
        assert_eq!(got, vec![vec![49999, 49998, 49997]]);
    }
}
