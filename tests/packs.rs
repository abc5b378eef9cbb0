//! insightface's formats, as `scripts/make_face_packs.py` writes them from their
//! specification with Python's standard library: a RecordIO pack (`train.rec` + `.idx`,
//! one record cut in two at a magic inside its header) read back as the same images as the
//! folder beside it, with and without its `.idx`; verification `.bin` files pickled by
//! Python 3 under protocols 2 and 4; this crate's writers read back by Python. Then
//! thousands of mutated files (truncated, bytes flipped, lengths made huge): never a panic,
//! and no allocation beyond a bound set by the file's size.
#![cfg(feature = "images")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use centerloss::data::bin::VerificationSet;
use centerloss::data::folder::ImageFolder;
use centerloss::data::recordio::{self, RecordPack};
use centerloss::data::{ImageSource, Preprocessing};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// The system allocator, recording the largest single allocation made on a thread that
/// has asked for it.
struct Watching;

static LARGEST: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static WATCHED: Cell<bool> = const { Cell::new(false) };
}

unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if WATCHED.with(|w| w.get()) {
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if WATCHED.with(|w| w.get()) {
            LARGEST.fetch_max(new_size, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

fn python_packs(name: &str, extra: &[&str]) -> PathBuf {
    let out = std::env::temp_dir().join(format!("centerloss-packs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make_face_packs.py");
    let status = Command::new("python3")
        .arg(script)
        .arg(&out)
        .args(extra)
        .status()
        .expect("these tests run scripts/make_face_packs.py with python3");
    assert!(status.success());
    out
}

#[test]
fn a_python_written_pack_reads_as_its_folder() {
    for (name, extra, shape) in [("grey", &[][..], [1, 24, 24]), ("rgb", &["--rgb", "--size", "20"][..], [3, 16, 16])] {
        let dir = python_packs(name, extra);
        let pack = RecordPack::open(&dir).unwrap();
        assert_eq!(pack.len(), 20);
        assert_eq!(pack.labels, (0..5).flat_map(|l| [l; 4]).collect::<Vec<i64>>());
        let folder =
            ImageFolder::from_source(&ImageSource::open(&dir.join("folder")).unwrap(), shape, "empty").unwrap();
        let from_pack = ImageFolder::from_source(&ImageSource::open(&dir).unwrap(), shape, "empty").unwrap();
        assert_eq!(from_pack.data, folder.data, "{name}: the pack's pixels and labels are the folder's");
        assert_eq!(from_pack.identities, folder.identities);
        // train.lst names the file each record was packed from.
        assert_eq!(
            from_pack.paths[2],
            PathBuf::from(format!("{}#3:folder/0/003.png", dir.join("train.rec").display()))
        );

        // Without its index the .rec is walked: the same records.
        let bare = dir.join("bare");
        std::fs::create_dir_all(&bare).unwrap();
        std::fs::copy(dir.join("train.rec"), bare.join("train.rec")).unwrap();
        let walked = RecordPack::open(&bare).unwrap();
        assert_eq!(walked.name(2), bare.join("train.rec#3"));
        assert_eq!((walked.images.clone(), walked.labels.clone()), (pack.images.clone(), pack.labels.clone()));

        // The crate's writer, read back: the same payloads and labels.
        let payloads: Vec<(u32, Vec<u8>)> =
            (0..pack.len()).map(|i| (pack.labels[i] as u32, pack.payload(i).unwrap())).collect();
        let rewritten = dir.join("rewritten");
        recordio::write_pack(&rewritten, &payloads).unwrap();
        let again = RecordPack::open(&rewritten).unwrap();
        assert_eq!(again.labels, pack.labels);
        assert!((0..again.len()).all(|i| again.payload(i).unwrap() == payloads[i].1));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn python_pickled_benchmarks_read_and_the_crates_pickle_reads_in_python() {
    let dir = python_packs("bin", &[]);
    let listed = std::fs::read_to_string(dir.join("pairs_images.txt")).unwrap();
    let files: Vec<Vec<u8>> = listed.lines().map(|p| std::fs::read(dir.join(p)).unwrap()).collect();
    for name in ["pairs.bin", "pairs_p4.bin"] {
        let set = VerificationSet::read(&dir.join(name)).unwrap();
        assert_eq!(set.images, files, "{name}");
        assert_eq!(set.same, (0..10).map(|i| i % 2 == 0).collect::<Vec<_>>());
    }
    let set = VerificationSet::read(&dir.join("pairs.bin")).unwrap();
    let ours = dir.join("ours.bin");
    set.write(&ours).unwrap();
    // Python 3 reads the Python 2 form as arcface_torch's eval does: encoding='bytes'.
    let check = format!(
        "import pickle,sys\nimages,same=pickle.load(open('{}','rb'),encoding='bytes')\nref=pickle.load(open('{}','rb'))\nsys.exit(0 if (list(images),list(same))==(list(ref[0]),list(ref[1])) else 1)",
        ours.display(),
        dir.join("pairs.bin").display()
    );
    assert!(Command::new("python3").args(["-c", &check]).status().unwrap().success());
    // The pixels come out as the folder's.
    let p = Preprocessing::centre_square([1, 24, 24]).unwrap();
    let first = p.decode(&set.images[0]).unwrap();
    assert_eq!(first, p.load(&dir.join(listed.lines().next().unwrap())).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One random mutation of `bytes`: truncated, a few bytes flipped, or a length-sized
/// field set huge.
fn mutate(bytes: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let mut out = bytes.to_vec();
    match rng.random_range(0..3) {
        0 => out.truncate(rng.random_range(0..bytes.len())),
        1 => {
            for _ in 0..rng.random_range(1..8) {
                let i = rng.random_range(0..out.len());
                out[i] ^= 1 << rng.random_range(0..8);
            }
        }
        _ => {
            let i = rng.random_range(0..out.len().saturating_sub(4));
            let huge: u32 = rng.random_range(0x1000_0000..=u32::MAX);
            out[i..i + 4].copy_from_slice(&huge.to_le_bytes());
        }
    }
    out
}

fn read_whole_pack(dir: &Path) {
    if let Ok(pack) = RecordPack::open(dir) {
        for i in 0..pack.len() {
            let _ = pack.payload(i);
        }
    }
}

#[test]
fn mutated_packs_and_pickles_fail_cleanly_with_bounded_allocation() {
    let dir = python_packs("fuzz", &["--identities", "3", "--images", "2", "--size", "8"]);
    let rec = std::fs::read(dir.join("train.rec")).unwrap();
    let idx = std::fs::read(dir.join("train.idx")).unwrap();
    let pickles = [std::fs::read(dir.join("pairs.bin")).unwrap(), std::fs::read(dir.join("pairs_p4.bin")).unwrap()];
    let work = dir.join("mutated");
    std::fs::create_dir_all(&work).unwrap();
    let mut rng = StdRng::seed_from_u64(23);
    let bound = 64 * (rec.len() + idx.len()) + (1 << 20);
    WATCHED.with(|w| w.set(true));
    for round in 0..3000 {
        let (r, i) = match round % 3 {
            0 => (mutate(&rec, &mut rng), idx.clone()),
            1 => (rec.clone(), mutate(&idx, &mut rng)),
            _ => (mutate(&rec, &mut rng), mutate(&idx, &mut rng)),
        };
        std::fs::write(work.join("train.rec"), &r).unwrap();
        std::fs::write(work.join("train.idx"), &i).unwrap();
        read_whole_pack(&work);
        let p = mutate(&pickles[round % 2], &mut rng);
        let _ = VerificationSet::parse(&p);
    }
    WATCHED.with(|w| w.set(false));
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(largest <= bound, "largest allocation {largest} bytes, bound {bound}");
    // Named errors: a wrong magic and an index past the end.
    let mut wrong = rec.clone();
    wrong[40] ^= 0xff;
    std::fs::write(work.join("train.rec"), &wrong).unwrap();
    std::fs::write(work.join("train.idx"), &idx).unwrap();
    let err = RecordPack::open(&work).err().expect("a broken magic is an error").to_string();
    assert!(err.contains("train.rec") && err.contains("offset 40") && err.contains("magic"), "{err}");
    std::fs::write(work.join("train.rec"), &rec).unwrap();
    std::fs::write(work.join("train.idx"), format!("{}7\t999999\n", String::from_utf8_lossy(&idx))).unwrap();
    let err = RecordPack::open(&work).err().expect("an offset past the end is an error").to_string();
    assert!(err.contains("train.idx") && err.contains("past the end"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
