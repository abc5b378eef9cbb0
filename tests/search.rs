//! 1:N search on the GPU against its f64 twin: the GEMM of probes against the gallery and
//! the top-k kernel, with awkward shapes (rows not a multiple of the workgroup, k = 1 and
//! the largest k, a gallery that takes several passes of probes), in both kernel families.

mod common;

use centerloss::model::normalize_rows;
use centerloss::search::{search_reference, GallerySearch, Hit};
use centerloss::Error;
use rand::{rngs::StdRng, Rng, SeedableRng};

fn unit_rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut rows: Vec<f32> = (0..n * dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    normalize_rows(&mut rows, dim);
    rows
}

/// Every rank's score matches the reference's; the rows match wherever the reference's
/// scores around that rank are not within float error of each other.
fn assert_same_hits(gpu: &[Vec<Hit>], reference: &[Vec<Hit>], gallery: &[f32], probes: &[f32], dim: usize) {
    assert_eq!(gpu.len(), reference.len());
    for (p, (got, want)) in gpu.iter().zip(reference).enumerate() {
        assert_eq!(got.len(), want.len());
        for (r, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g.score - w.score).abs() <= 1e-5, "probe {p} rank {r}: {g:?} vs {w:?}");
            let exact: f64 = (0..dim).map(|d| gallery[g.index * dim + d] as f64 * probes[p * dim + d] as f64).sum();
            assert!((g.score as f64 - exact).abs() <= 1e-5, "probe {p} rank {r}: score of row {} is {exact}", g.index);
            let close = |h: Option<&Hit>| h.is_some_and(|h| (h.score - w.score).abs() <= 1e-5);
            if !close(want.get(r + 1)) && !close(r.checked_sub(1).and_then(|q| want.get(q))) {
                assert_eq!(g.index, w.index, "probe {p} rank {r}");
            }
        }
    }
}

#[test]
fn search_matches_the_reference_on_awkward_shapes() {
    let Some(ctx) = common::gpu() else { return };
    for ctx in common::kernel_variants(&ctx) {
        // (gallery rows, dim, probes, k); 100 003 rows take 168 probes per pass: three passes.
        for (rows, dim, probes, k) in [(70, 5, 3, 64), (70, 5, 3, 1), (1_000, 37, 130, 7), (100_003, 16, 400, 5)] {
            let gallery = unit_rows(rows, dim, rows as u64);
            let probe_rows = unit_rows(probes, dim, 7 + probes as u64);
            let mut search = GallerySearch::new(&ctx, &gallery, dim, k).unwrap();
            let got = search.search(&probe_rows).unwrap();
            let want = search_reference(&gallery, &probe_rows, dim, k);
            assert_same_hits(&got, &want, &gallery, &probe_rows, dim);
            // A second call reuses the passes it built.
            assert_eq!(search.search(&probe_rows[..dim]).unwrap()[0], got[0]);
        }
    }
}

#[test]
fn ties_go_to_the_lower_row() {
    let Some(ctx) = common::gpu() else { return };
    // Rows 3, 10 and 200 equal the probe; everything else is orthogonal to it.
    let dim = 4;
    let mut gallery = vec![0.0f32; 300 * dim];
    for r in 0..300 {
        gallery[r * dim + 1 + r % 3] = 1.0;
    }
    for r in [200, 10, 3] {
        gallery[r * dim..(r + 1) * dim].copy_from_slice(&[1.0, 0.0, 0.0, 0.0]);
    }
    let mut search = GallerySearch::new(&ctx, &gallery, dim, 4).unwrap();
    let hits = search.search(&[1.0, 0.0, 0.0, 0.0]).unwrap();
    let rows: Vec<usize> = hits[0].iter().map(|h| h.index).collect();
    assert_eq!(rows, [3, 10, 200, 0]);
}

#[test]
fn bad_searches_are_errors() {
    let Some(ctx) = common::gpu() else { return };
    let gallery = unit_rows(10, 4, 1);
    for k in [0, 11] {
        assert!(matches!(GallerySearch::new(&ctx, &gallery, 4, k), Err(Error::Config(_))), "k = {k}");
    }
    assert!(matches!(GallerySearch::new(&ctx, &unit_rows(100, 4, 1), 4, 65), Err(Error::Config(_))));
    assert!(matches!(GallerySearch::new(&ctx, &gallery[..7], 4, 1), Err(Error::Config(_))));
    let mut search = GallerySearch::new(&ctx, &gallery, 4, 2).unwrap();
    assert!(search.search(&[1.0; 5]).is_err());
    assert!(matches!(search.search(&[f32::NAN, 0.0, 0.0, 0.0]), Err(Error::NonFinite { .. })));
}
