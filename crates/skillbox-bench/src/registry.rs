//! Loading the registry from 10, 100, 1,000 and 10,000 skill files.

use std::time::Instant;

use skillbox_skills::{Locations, Registry};

use crate::fixture::{write_fillers, write_fillers_without_patterns};
use crate::stats::{fmt_ms, Samples};
use crate::Bench;

/// The registry section.
pub(crate) fn registry(b: &mut Bench) {
    println!("\n### Registry load\n");
    println!(
        "`Registry::load` over one workspace directory of N skill files (a third each: a \
         command with a regex-validated parameter, a prompt, a command with an enum and an \
         alias), plus the built-ins; files in the page cache (one unmeasured load first). \
         Sizes are interleaved round by round."
    );
    // (files, repetitions, without patterns)
    let sizes: [(usize, usize, bool); 5] = if b.quick {
        [(10, 60, false), (100, 30, false), (1000, 10, false), (10000, 3, false), (1000, 10, true)]
    } else {
        [
            (10, 300, false),
            (100, 100, false),
            (1000, 30, false),
            (10000, 7, false),
            (1000, 30, true),
        ]
    };
    let root = tempfile::Builder::new().prefix("skillbox-bench-reg-").tempdir().unwrap();
    let locs: Vec<Locations> = sizes
        .iter()
        .map(|(n, _, plain)| {
            let dir = root.path().join(format!("n{n}-{plain}"));
            if *plain {
                write_fillers_without_patterns(&dir, *n);
            } else {
                write_fillers(&dir, *n);
            }
            let l = Locations {
                global: Vec::new(),
                workspace: vec![dir],
                builtins: true,
                ..Locations::default()
            };
            let reg = Registry::load(&l);
            assert_eq!(reg.len(), n + 2, "{:?}", reg.problems().first());
            l
        })
        .collect();
    let mut samples: Vec<Samples> = sizes.iter().map(|_| Samples::new("")).collect();
    let max_reps = sizes.iter().map(|s| s.1).max().unwrap_or(0);
    for rep in 0..max_reps {
        for (i, (_, reps, _)) in sizes.iter().enumerate() {
            if rep < *reps {
                let t = Instant::now();
                let reg = Registry::load(&locs[i]);
                samples[i].times.push(t.elapsed());
                std::hint::black_box(reg);
            }
        }
    }
    println!(
        "\n| skill files | n | median | p95 | per file (median) | ratio per file vs 10 files |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    let per = |i: usize| samples[i].median_ms() * 1e3 / sizes[i].0 as f64;
    for (i, s) in samples.iter().enumerate() {
        println!(
            "| {}{} | {} | {} | {} | {:.1} µs | {:.2}x |",
            crate::stats::thousands(sizes[i].0 as f64),
            if sizes[i].2 { ", none with a regex `pattern`" } else { "" },
            s.times.len(),
            fmt_ms(s.median_ms()),
            fmt_ms(s.p95_ms()),
            per(i),
            per(i) / per(0)
        );
    }
    let m = samples[2].median_ms();
    b.verdicts.add("1,000 skills loaded in < 20 ms", format!("{} median", fmt_ms(m)), m < 20.0);
}
