//! Joins the rows of one chunk read as several queries, one per group of fields.
//!
//! A field list too long for one query URL is split into groups (see
//! `select::field_groups`); every group's query has the same window and order `(cursor, Id)`,
//! so, while the org does not change underneath, the groups return the same rows in the same
//! order. This module lines their pages up and joins them into batches of the full schema.
//!
//! Invariant: a joined row is only emitted when every group has it at the same position with
//! the same `Id` and cursor; any disagreement (a row changed between the group queries) is a
//! [`RowsShifted`] error and the chunk is read again. Memory: at most about one page per group.

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use std::collections::VecDeque;

/// The groups disagreed on which rows the window holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rows changed while the {groups} field groups of this chunk were read")]
pub struct RowsShifted {
    pub groups: usize,
}

/// One group's pages waiting to be joined.
struct GroupQueue {
    batches: VecDeque<RecordBatch>,
    rows: usize,
    done: bool,
}

/// Lines up the pages of several field-group queries of one chunk.
pub struct GroupJoin {
    schema: SchemaRef,
    /// For each group, the full-schema position of each of its columns.
    positions: Vec<Vec<usize>>,
    queues: Vec<GroupQueue>,
}

/// The columns every group starts with: `Id` then the cursor.
const KEY_COLUMNS: usize = 2;

impl GroupJoin {
    /// `positions[g][i]` is where column `i` of group `g` goes in `schema`; every group's
    /// first two columns are `Id` and the cursor.
    pub fn new(schema: SchemaRef, positions: Vec<Vec<usize>>) -> Self {
        let queues = positions
            .iter()
            .map(|_| GroupQueue {
                batches: VecDeque::new(),
                rows: 0,
                done: false,
            })
            .collect();
        Self {
            schema,
            positions,
            queues,
        }
    }

    /// Adds a decoded page of group `group`; `done` marks its last page.
    pub fn push(&mut self, group: usize, batch: RecordBatch, done: bool) {
        let q = &mut self.queues[group];
        q.rows += batch.num_rows();
        if batch.num_rows() > 0 {
            q.batches.push_back(batch);
        }
        q.done = done;
    }

    /// Groups that have nothing queued and more pages to come: fetch these next.
    pub fn hungry(&self) -> Vec<usize> {
        (0..self.queues.len())
            .filter(|&g| self.queues[g].rows == 0 && !self.queues[g].done)
            .collect()
    }

    /// True when every group has sent its last page and every row was joined.
    pub fn is_finished(&self) -> bool {
        self.queues.iter().all(|q| q.done && q.rows == 0)
    }

    /// Joins the rows every group has queued.
    ///
    /// # Errors
    /// [`RowsShifted`] when the groups disagree on a row, or one ended before the others.
    pub fn take(&mut self) -> Result<Option<RecordBatch>, RowsShifted> {
        let shifted = RowsShifted {
            groups: self.queues.len(),
        };
        let n = self.queues.iter().map(|q| q.rows).min().unwrap_or(0);
        if n == 0 {
            let ended_early = self.queues.iter().any(|q| q.done && q.rows == 0)
                && self.queues.iter().any(|q| q.rows > 0);
            return if ended_early { Err(shifted) } else { Ok(None) };
        }
        let parts: Vec<RecordBatch> = self.queues.iter_mut().map(|q| take_rows(q, n)).collect();
        let first = &parts[0];
        for part in &parts[1..] {
            for k in 0..KEY_COLUMNS {
                if part.column(k).as_ref() != first.column(k).as_ref() {
                    return Err(shifted);
                }
            }
        }
        let mut columns: Vec<Option<ArrayRef>> = vec![None; self.schema.fields().len()];
        for (part, positions) in parts.iter().zip(&self.positions) {
            for (i, &pos) in positions.iter().enumerate() {
                columns[pos].get_or_insert_with(|| part.column(i).clone());
            }
        }
        let columns = columns
            .into_iter()
            .map(|c| c.expect("every column belongs to a group"))
            .collect();
        Ok(Some(
            RecordBatch::try_new(self.schema.clone(), columns)
                .expect("group columns match the full schema"),
        ))
    }
}

/// Removes the first `n` rows from a group's queue, as one batch.
fn take_rows(q: &mut GroupQueue, n: usize) -> RecordBatch {
    let mut taken = Vec::new();
    let mut need = n;
    while need > 0 {
        let batch = q.batches.pop_front().expect("queued rows are counted");
        if batch.num_rows() <= need {
            need -= batch.num_rows();
            taken.push(batch);
        } else {
            taken.push(batch.slice(0, need));
            q.batches
                .push_front(batch.slice(need, batch.num_rows() - need));
            need = 0;
        }
    }
    q.rows -= n;
    if taken.len() == 1 {
        return taken.pop().expect("one batch");
    }
    let schema = taken[0].schema();
    concat_batches(&schema, &taken).expect("batches of one group share a schema")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn schema(names: &[&str]) -> SchemaRef {
        Arc::new(Schema::new(
            names
                .iter()
                .map(|n| {
                    Field::new(
                        *n,
                        if *n == "Id" {
                            DataType::Utf8
                        } else {
                            DataType::Int64
                        },
                        true,
                    )
                })
                .collect::<Vec<_>>(),
        ))
    }

    fn batch(names: &[&str], ids: &[&str], base: i64) -> RecordBatch {
        let s = schema(names);
        let mut cols: Vec<ArrayRef> = vec![Arc::new(StringArray::from(ids.to_vec()))];
        for k in 1..names.len() {
            let vals: Vec<i64> = (0..ids.len() as i64)
                .map(|i| base + i * 10 + k as i64)
                .collect();
            cols.push(Arc::new(Int64Array::from(vals)));
        }
        RecordBatch::try_new(s, cols).unwrap()
    }

    fn key_only(ids: &[&str], names: &[&str]) -> RecordBatch {
        batch(names, ids, 0)
    }

    #[test]
    fn pages_of_different_sizes_join_into_full_rows() {
        let full = schema(&["Id", "Cur", "A", "B"]);
        let mut join = GroupJoin::new(full, vec![vec![0, 1, 2], vec![0, 1, 3]]);
        join.push(0, key_only(&["a", "b", "c"], &["Id", "Cur", "A"]), true);
        assert_eq!(join.hungry(), vec![1]);
        join.push(1, key_only(&["a", "b"], &["Id", "Cur", "B"]), false);
        let first = join.take().unwrap().unwrap();
        assert_eq!(first.num_rows(), 2);
        assert_eq!(first.schema().field(3).name(), "B");
        assert_eq!(join.hungry(), vec![1]);
        join.push(1, batch(&["Id", "Cur", "B"], &["c"], 20), true);
        assert_eq!(join.take().unwrap().unwrap().num_rows(), 1);
        assert!(join.is_finished());
        assert_eq!(join.take().unwrap(), None);
    }

    #[test]
    fn a_row_that_moved_between_group_queries_is_detected() {
        let full = schema(&["Id", "Cur", "A", "B"]);
        let mut join = GroupJoin::new(full.clone(), vec![vec![0, 1, 2], vec![0, 1, 3]]);
        join.push(0, key_only(&["a", "b"], &["Id", "Cur", "A"]), true);
        join.push(1, key_only(&["a", "x"], &["Id", "Cur", "B"]), true);
        assert_eq!(join.take().unwrap_err(), RowsShifted { groups: 2 });

        let mut join = GroupJoin::new(full, vec![vec![0, 1, 2], vec![0, 1, 3]]);
        join.push(0, key_only(&["a", "b"], &["Id", "Cur", "A"]), true);
        join.push(1, key_only(&["a"], &["Id", "Cur", "B"]), true);
        assert_eq!(join.take().unwrap().unwrap().num_rows(), 1);
        assert!(join.take().is_err(), "one group ended before the other");
    }
}
