//! Pools the samples of rows measured in several processes: reads the
//! `ABS|` lines that the A/B benches print (from standard input), joins the
//! samples of each row id, and prints each row again over all of them.
//!
//! Why: a process has its own memory layout, page placement and thread
//! placement, and those last for its whole life, so pairs taken in one
//! process agree with each other more than with a rerun. Pooling the pairs
//! of several processes gives an interval that a rerun agrees with.
//! `scripts/bench.sh` runs each bench `AB_RUNS` times and pipes the lines
//! here.

use std::io::BufRead;

use sysblocks_benchkit::Row;

fn main() {
    let mut rows: Vec<Row> = Vec::new();
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        let Some(row) = Row::parse_samples(&line) else { continue };
        match rows.iter_mut().find(|r| r.id == row.id) {
            Some(pooled) => pooled.samples.extend(row.samples),
            None => rows.push(row),
        }
    }
    if rows.is_empty() {
        eprintln!("ab-pool: no ABS| line on standard input");
        std::process::exit(1);
    }
    for row in rows {
        Row::new(&row.id, &row.what, &row.unit, row.target, row.samples).print();
    }
}
