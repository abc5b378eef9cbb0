//! Files made to hurt a reader: each ends in a clear error naming what is wrong, never a
//! panic, an abort, an allocation out of proportion to the file or a hang. No GPU needed.
#![cfg(feature = "experiments")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use centerloss::data::bin::VerificationSet;
use centerloss::data::mnist::Mnist;
use centerloss::data::npy;
use centerloss::data::recordio::{PackWriter, RecordPack};

fn dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("centerloss-hostile-{tag}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_deeply_nested_pickle_is_refused_not_a_stack_overflow() {
    // python3 -c "open('d.bin','wb').write(b'\x80\x02)'+b'\x85'*200000+b'.')"
    let deep = [&b"\x80\x02)"[..], &vec![0x85u8; 200_000], b"."].concat();
    let err = VerificationSet::parse(&deep).unwrap_err();
    assert!(err.contains("nest deeper than 32 levels"), "{err}");
    // Lists appended into lists, the other way to nest.
    let lists = [&b"\x80\x02"[..], &b"]"[..].repeat(100_000), &b"a".repeat(99_999), b"."].concat();
    assert!(VerificationSet::parse(&lists).unwrap_err().contains("nest deeper"));
}

#[test]
fn a_pickle_that_repeats_a_memoised_image_is_refused_before_copying_it() {
    // One 1 MiB image memoised, then 2 000 references to it: 1 MiB of file, 2 GiB of images.
    let image = vec![7u8; 1 << 20];
    let mut p = vec![0x80, 2, b']', b'(', b'T'];
    p.extend((image.len() as u32).to_le_bytes());
    p.extend(&image);
    p.extend(b"q\x01");
    for _ in 0..2000 {
        p.extend(b"h\x01");
    }
    p.extend(b"e]");
    p.extend(std::iter::repeat_n(0x88, 1000));
    p.extend(b"\x86.");
    let start = Instant::now();
    let err = VerificationSet::parse(&p).unwrap_err();
    assert!(err.contains("more than twice the file's size"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5), "refused early: {:?}", start.elapsed());
    // Values without bytes: a list of 5 million Nones from a 5 MB file.
    let nones = [&b"\x80\x02]("[..], &vec![b'N'; 5_000_000], b"e."].concat();
    assert!(VerificationSet::parse(&nones).unwrap_err().contains("more than 4194304 values"));
}

#[test]
fn an_npy_whose_shape_overflows_is_refused() {
    let d = dir("npy");
    let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, 128), }}", 1u64 << 57);
    let mut h = header.into_bytes();
    let pad = (10 + h.len() + 1).next_multiple_of(64) - (10 + h.len() + 1);
    h.extend(std::iter::repeat_n(b' ', pad));
    h.push(b'\n');
    let bytes = [&b"\x93NUMPY\x01\x00"[..], &(h.len() as u16).to_le_bytes(), &h].concat();
    let path = d.join("huge.npy");
    std::fs::write(&path, bytes).unwrap();
    let err = npy::read_matrix(&path).unwrap_err().to_string();
    assert!(err.contains("huge.npy") && err.contains("bytes of data for a (144115188075855872, 128)"), "{err}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn mnist_files_that_wrap_or_never_end_are_refused() {
    let d = dir("mnist");
    // Three dimensions of 2^22 declare 2^66 values (a product that once wrapped).
    let images = [&[0u8, 0, 8, 3][..], &(1u32 << 22).to_be_bytes().repeat(3)].concat();
    std::fs::write(d.join("t10k-images-idx3-ubyte"), images).unwrap();
    std::fs::write(d.join("t10k-labels-idx1-ubyte"), [0u8, 0, 8, 1, 0, 0, 0, 1, 3]).unwrap();
    let err = Mnist::load(&d).unwrap_err().to_string();
    assert!(err.contains("declare more than 1073741824 values"), "{err}");
    // /dev/zero under an MNIST name: a device, refused before a byte is read.
    #[cfg(unix)]
    {
        std::fs::remove_file(d.join("t10k-images-idx3-ubyte")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", d.join("t10k-images-idx3-ubyte")).unwrap();
        let err = Mnist::load(&d).unwrap_err().to_string();
        assert!(err.contains("a device, not a regular file"), "{err}");
    }
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn pack_labels_beyond_an_exact_f32_are_refused() {
    let d = dir("labels");
    // Labels 1e30 and 3e30 would both read as i64::MAX: one identity out of two.
    let mut pack = PackWriter::create(&d).unwrap();
    pack.push(1, b"image").unwrap();
    pack.finish().unwrap();
    let rec = d.join("train.rec");
    let mut bytes = std::fs::read(&rec).unwrap();
    // The first image record's label: magic, length, then IRHeader (flag u32, label f32).
    bytes[12..16].copy_from_slice(&1e30f32.to_le_bytes());
    std::fs::write(&rec, bytes).unwrap();
    let err = RecordPack::open(&d).err().unwrap().to_string();
    assert!(err.contains("label 1000000000000000000000000000000, not an identity number"), "{err}");
    assert!(PackWriter::create(&d.join("p2")).unwrap().push(1 << 24, b"x").is_err());
    std::fs::remove_dir_all(&d).ok();
}

/// A named pipe at `path` (nothing ever writes to it: reading it would wait forever).
#[cfg(unix)]
fn fifo(path: &Path) {
    let made = std::process::Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success());
}

#[cfg(unix)]
#[test]
fn named_pipes_are_refused_not_waited_on() {
    use centerloss::data::ImageSource;
    use centerloss::data::Preprocessing;
    let d = dir("fifo");
    let start = Instant::now();
    for name in ["lfw.bin", "face.png", "list.txt", "g.npy"] {
        fifo(&d.join(name));
    }
    let err = VerificationSet::read(&d.join("lfw.bin")).unwrap_err().to_string();
    assert!(err.contains("lfw.bin: a named pipe (FIFO), not a regular file"), "{err}");
    let err = Preprocessing::centre([1, 8, 8]).unwrap().load(&d.join("face.png")).unwrap_err();
    assert!(err.contains("a named pipe"), "{err}");
    assert!(ImageSource::open(&d.join("list.txt")).err().unwrap().to_string().contains("a named pipe"));
    assert!(npy::read_matrix(&d.join("g.npy")).unwrap_err().to_string().contains("a named pipe"));
    assert!(start.elapsed() < Duration::from_secs(10));
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_truncated_jpeg_is_an_error_not_a_grey_image() {
    let face = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/yalefaces/subject01/happy.png");
    let img = image::open(&face).unwrap();
    let mut jpeg = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
    let p = centerloss::data::Preprocessing::centre([1, 32, 32]).unwrap();
    assert!(p.decode(&jpeg).is_ok());
    let err = p.decode(&jpeg[..jpeg.len() / 2]).unwrap_err();
    assert!(err.contains("a truncated JPEG"), "{err}");
    // The PNG decoder reports its own truncation.
    let png = std::fs::read(&face).unwrap();
    assert!(p.decode(&png[..png.len() / 2]).is_err());
}

#[test]
fn pairs_lists_without_both_kinds_of_pair_are_errors() {
    let images: Vec<(String, usize)> = vec![("a".into(), 1), ("a".into(), 2), ("b".into(), 1)];
    for text in ["", "1\n", "a 1 2\n", "a 1 b 1\n"] {
        let err = centerloss::data::parse_pairs(text, &images).unwrap_err().to_string();
        assert!(err.contains("verification needs both"), "{text:?}: {err}");
    }
    assert_eq!(centerloss::data::parse_pairs("a 1 2\na 1 b 1\n", &images).unwrap().len(), 2);
}
