//! `dumn_recent(item_id, ts [, n])`: an aggregate that builds a feedback sequence.
//!
//! Contract: for the rows of a group (in any order), returns the `item_id`s ordered by `ts`
//! newest first (equal `ts`: larger `item_id` first), at most `n` of them (all when `n` is
//! left out). Rows whose `item_id` or `ts` is NULL are skipped; a group with no row left
//! gives an empty list, never NULL. `n` must be a positive integer literal. `ts` may be a
//! timestamp of any unit or an integer; `item_id` any integer. The result is
//! `List(Int64)`. `FILTER (WHERE …)` applies as for any aggregate.
//!
//! For every row's sequence strictly before it, use the window function `dumn_history`
//! (`udfs/history.rs`).
//!
//! Why not `array_agg(item_id ORDER BY ts DESC)`: DataFusion 55 runs an ordered
//! `array_agg` one value at a time as `ScalarValue`s and re-measures every group's size on
//! each batch, which dominated the data plane's time. This keeps `(ts, item)` pairs in flat
//! vectors per group and, with `n`, never more than `2n` of them (memory bounded by groups
//! times `n`, whatever the history length).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, ListArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator,
    Signature, TypeSignature, Volatility,
};
use datafusion::physical_expr::expressions::Literal;

/// The function's SQL name.
pub const NAME: &str = "dumn_recent";

/// The `dumn_recent` aggregate, ready to register.
pub fn dumn_recent() -> AggregateUDF {
    AggregateUDF::from(DumnRecent::new())
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DumnRecent {
    signature: Signature,
}

impl DumnRecent {
    pub fn new() -> Self {
        Self {
            signature: Signature::one_of(
                vec![TypeSignature::Any(2), TypeSignature::Any(3)],
                Volatility::Immutable,
            ),
        }
    }
}

impl Default for DumnRecent {
    fn default() -> Self {
        Self::new()
    }
}

fn list_type() -> DataType {
    DataType::new_list(DataType::Int64, true)
}

/// Reads the optional `n` argument: a positive integer literal.
fn limit(args: &AccumulatorArgs) -> Result<Option<usize>> {
    let Some(expr) = args.exprs.get(2) else {
        return Ok(None);
    };
    let Some(lit) = expr.downcast_ref::<Literal>() else {
        return plan_err!("{NAME}: the third argument (n) must be a literal integer");
    };
    match lit.value().cast_to(&DataType::Int64)? {
        ScalarValue::Int64(Some(n)) if n > 0 => Ok(Some(n as usize)),
        other => plan_err!("{NAME}: n must be a positive integer, got {other}"),
    }
}

/// What `\df dumn_recent` prints.
fn documentation() -> &'static Documentation {
    static DOC: std::sync::LazyLock<Documentation> =
        std::sync::LazyLock::new(|| {
            Documentation::builder(
            super::doc_section(),
            "A feedback sequence: the group's item ids ordered by ts, newest first (ties: \
             larger id first), at most n; NULL rows skipped; an empty list for a group \
             without rows. Returns List(Int64).",
            "dumn_recent(item_id, ts [, n])",
        )
        .with_argument("item_id", "an integer column: the items of the sequence")
        .with_argument("ts", "a timestamp or integer column: the order, newest first")
        .with_argument("n", "optional positive integer literal: the most items kept")
        .with_sql_example(
            "SELECT user_id, dumn_recent(item_id, ts, 50) FILTER (WHERE clicked) AS click_seq\n\
             FROM impressions GROUP BY user_id",
        )
        .build()
        });
    &DOC
}

impl AggregateUDFImpl for DumnRecent {
    fn documentation(&self) -> Option<&Documentation> {
        Some(documentation())
    }

    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        if !args[0].is_integer() && !args[0].is_null() {
            return plan_err!(
                "{NAME}: the first argument (item_id) must be an integer, got {}",
                args[0]
            );
        }
        if !matches!(args[1], DataType::Timestamp(_, _)) && !args[1].is_integer() {
            return plan_err!(
                "{NAME}: the second argument (ts) must be a timestamp, got {}",
                args[1]
            );
        }
        if args.len() == 3 && !args[2].is_integer() {
            return plan_err!(
                "{NAME}: the third argument (n) must be an integer, got {}",
                args[2]
            );
        }
        Ok(list_type())
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format!("{}[items]", args.name),
                list_type(),
                true,
            )),
            Arc::new(Field::new(format!("{}[ts]", args.name), list_type(), true)),
        ])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(RecentAccumulator {
            limit: limit(&args)?,
            group: Group::default(),
        }))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(RecentGroups {
            limit: limit(&args)?,
            groups: Vec::new(),
            held: 0,
        }))
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        Ok(ScalarValue::List(ScalarValue::new_list_nullable(
            &[],
            &DataType::Int64,
        )))
    }
}

/// The `(ts, item)` pairs of one group, oldest first once sorted (pairs that arrive in time
/// order are never re-sorted).
#[derive(Debug, Clone)]
struct Group {
    events: Vec<(i64, i64)>,
    /// Whether `events` is in ascending `(ts, item)` order.
    sorted: bool,
}

impl Default for Group {
    fn default() -> Self {
        Self {
            events: Vec::new(),
            sorted: true,
        }
    }
}

impl Group {
    /// Adds a pair; returns the change in the number of pairs held.
    fn push(&mut self, ts: i64, item: i64, limit: Option<usize>) -> isize {
        if self.events.last().is_some_and(|last| (ts, item) < *last) {
            self.sorted = false;
        }
        self.events.push((ts, item));
        if let Some(n) = limit {
            if self.events.len() >= 2 * n.max(8) {
                let before = self.events.len();
                self.keep_newest(n);
                return 1 + self.events.len() as isize - before as isize;
            }
        }
        1
    }

    fn sort(&mut self) {
        if !self.sorted {
            self.events.sort_unstable();
            self.sorted = true;
        }
    }

    /// Sorts, and drops all but the newest `limit` pairs.
    fn keep_newest(&mut self, limit: usize) {
        self.sort();
        let drop = self.events.len().saturating_sub(limit);
        self.events.drain(..drop);
    }

    /// The newest `limit` pairs (all without a limit), newest first.
    fn newest(&mut self, limit: Option<usize>) -> Vec<(i64, i64)> {
        self.sort();
        let n = limit.map_or(self.events.len(), |n| n.min(self.events.len()));
        self.events.iter().rev().take(n).copied().collect()
    }
}

fn as_i64(a: &ArrayRef) -> Result<Int64Array> {
    let c = cast(a, &DataType::Int64)?;
    Ok(c.as_primitive::<Int64Type>().clone())
}

/// Calls `f(row, ts, item)` for every row with both values and a passing filter.
fn each_row(
    values: &[ArrayRef],
    filter: Option<&BooleanArray>,
    mut f: impl FnMut(usize, i64, i64),
) -> Result<()> {
    let items = as_i64(&values[0])?;
    let ts = as_i64(&values[1])?;
    for row in 0..items.len() {
        if items.is_null(row) || ts.is_null(row) {
            continue;
        }
        if let Some(fl) = filter {
            if !fl.is_valid(row) || !fl.value(row) {
                continue;
            }
        }
        f(row, ts.value(row), items.value(row));
    }
    Ok(())
}

/// Calls `f(row, ts, item)` for every pair in a state batch (two parallel list columns).
fn each_state_pair(states: &[ArrayRef], mut f: impl FnMut(usize, i64, i64)) -> Result<()> {
    let (items, ts) = (states[0].as_list::<i32>(), states[1].as_list::<i32>());
    let (iv, tv) = (
        items.values().as_primitive::<Int64Type>(),
        ts.values().as_primitive::<Int64Type>(),
    );
    let (io, to) = (items.value_offsets(), ts.value_offsets());
    for row in 0..items.len() {
        if items.is_null(row) {
            continue;
        }
        let (a, b) = (io[row] as usize, io[row + 1] as usize);
        if b - a != (to[row + 1] - to[row]) as usize {
            return exec_err!("{NAME}: state lists of different lengths");
        }
        let t0 = to[row] as usize;
        for (k, j) in (a..b).enumerate() {
            f(row, tv.value(t0 + k), iv.value(j));
        }
    }
    Ok(())
}

/// Builds a list array from per-group pair slices, taking `.1` (items) or `.0` (ts).
fn to_list<'a>(
    groups: impl Iterator<Item = &'a [(i64, i64)]>,
    pick: fn(&(i64, i64)) -> i64,
) -> ArrayRef {
    let mut values = Vec::new();
    let mut lengths = Vec::new();
    for g in groups {
        values.extend(g.iter().map(pick));
        lengths.push(g.len());
    }
    Arc::new(ListArray::new(
        Arc::new(Field::new_list_field(DataType::Int64, true)),
        OffsetBuffer::from_lengths(lengths),
        Arc::new(Int64Array::from(values)),
        None,
    ))
}

struct RecentGroups {
    limit: Option<usize>,
    groups: Vec<Group>,
    /// Pairs held over all groups, kept up to date so that `size` is O(1).
    held: isize,
}

impl RecentGroups {
    fn take(&mut self, emit_to: EmitTo) -> Vec<Group> {
        let taken = emit_to.take_needed(&mut self.groups);
        self.held -= taken.iter().map(|g| g.events.len() as isize).sum::<isize>();
        taken
    }

    /// Takes the groups `emit_to` names and returns each one's newest events.
    fn take_newest(&mut self, emit_to: EmitTo) -> Vec<Vec<(i64, i64)>> {
        let limit = self.limit;
        self.take(emit_to)
            .iter_mut()
            .map(|g| g.newest(limit))
            .collect()
    }
}

impl GroupsAccumulator for RecentGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize_with(total_num_groups, Group::default);
        let (limit, groups, held) = (self.limit, &mut self.groups, &mut self.held);
        each_row(values, opt_filter, |row, ts, item| {
            *held += groups[group_indices[row]].push(ts, item, limit)
        })
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize_with(total_num_groups, Group::default);
        let (limit, groups, held) = (self.limit, &mut self.groups, &mut self.held);
        each_state_pair(values, |row, ts, item| {
            *held += groups[group_indices[row]].push(ts, item, limit)
        })
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let mut rows: Vec<Vec<(i64, i64)>> = vec![Vec::new(); values[0].len()];
        each_row(values, opt_filter, |row, ts, item| {
            rows[row].push((ts, item))
        })?;
        Ok(vec![
            to_list(rows.iter().map(Vec::as_slice), |e| e.1),
            to_list(rows.iter().map(Vec::as_slice), |e| e.0),
        ])
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let newest = self.take_newest(emit_to);
        Ok(to_list(newest.iter().map(Vec::as_slice), |e| e.1))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let newest = self.take_newest(emit_to);
        Ok(vec![
            to_list(newest.iter().map(Vec::as_slice), |e| e.1),
            to_list(newest.iter().map(Vec::as_slice), |e| e.0),
        ])
    }

    fn size(&self) -> usize {
        self.groups.capacity() * std::mem::size_of::<Group>()
            + self.held.max(0) as usize * std::mem::size_of::<(i64, i64)>() * 2
    }
}

/// The single-group form, for plans without GROUP BY.
#[derive(Debug)]
struct RecentAccumulator {
    limit: Option<usize>,
    group: Group,
}

impl Accumulator for RecentAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let (limit, group) = (self.limit, &mut self.group);
        each_row(values, None, |_, ts, item| {
            group.push(ts, item, limit);
        })
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (limit, group) = (self.limit, &mut self.group);
        each_state_pair(states, |_, ts, item| {
            group.push(ts, item, limit);
        })
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let newest = self.group.newest(self.limit);
        let list = to_list(std::iter::once(newest.as_slice()), |e| e.1);
        Ok(ScalarValue::List(Arc::new(list.as_list::<i32>().clone())))
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let newest = self.group.newest(self.limit);
        let items = to_list(std::iter::once(newest.as_slice()), |e| e.1);
        let ts = to_list(std::iter::once(newest.as_slice()), |e| e.0);
        Ok(vec![
            ScalarValue::List(Arc::new(items.as_list::<i32>().clone())),
            ScalarValue::List(Arc::new(ts.as_list::<i32>().clone())),
        ])
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.group.events.capacity() * 16
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::prelude::{SessionConfig, SessionContext};

    async fn lists(sql: &str) -> Vec<Vec<i64>> {
        // Four partitions, so partial states are merged.
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(4));
        ctx.register_udaf(super::dumn_recent());
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let mut out = Vec::new();
        for b in batches {
            let l = b.column(0).as_list::<i32>();
            for i in 0..l.len() {
                let v = l.value(i);
                out.push(
                    v.as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                        .values()
                        .to_vec(),
                );
            }
        }
        out
    }

    const ROWS: &str = "(VALUES (1, 10, 5, 'a'), (1, 11, 7, 'a'), (1, 12, 7, 'b'), (1, NULL, 9, 'a'), \
                         (1, 13, NULL, 'a'), (1, 14, 1, 'a'), (2, 20, 3, 'b')) AS t(u, item, ts, k)";

    #[tokio::test]
    async fn newest_first_ties_by_larger_item_nulls_skipped() {
        let got = lists(&format!(
            "SELECT dumn_recent(item, ts) FROM {ROWS} WHERE u = 1"
        ))
        .await;
        assert_eq!(got, vec![vec![12, 11, 10, 14]]);
    }

    #[tokio::test]
    async fn limit_filter_and_empty_groups() {
        let got = lists(&format!(
            "SELECT dumn_recent(item, ts, 2) FILTER (WHERE k = 'a') FROM {ROWS} GROUP BY u ORDER BY u"
        ))
        .await;
        assert_eq!(
            got,
            vec![vec![11, 10], vec![]],
            "user 2 has no 'a' rows: empty, not NULL"
        );
    }

    #[tokio::test]
    async fn many_rows_across_partitions_keep_the_newest() {
        let got = lists(
            "SELECT dumn_recent(v % 1000, v, 3) FROM (SELECT value AS v FROM generate_series(1, 100000)) GROUP BY v % 2 ORDER BY v % 2",
        )
        .await;
        assert_eq!(got, vec![vec![0, 998, 996], vec![999, 997, 995]]);
    }
}
