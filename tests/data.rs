//! Image-folder reading on small generated trees (PGM, PNG, JPEG), a corrupt file and an
//! empty identity folder; list files; pairs files; the identity split.
#![cfg(feature = "images")]

use std::path::Path;

use centerloss::data::folder::{numbered, ImageFolder};
use centerloss::data::{parse_pairs, ImageSource};
use centerloss::{Error, Result};

/// The images `path` lists (a folder or a list file), decoded to `shape`.
fn decode(path: &Path, shape: [usize; 3]) -> Result<ImageFolder> {
    ImageFolder::from_source(&ImageSource::open(path)?, shape, "none of its images decode")
}

fn write_images(dir: &Path, name: &str, count: usize, shade: u8) {
    let id = dir.join(name);
    std::fs::create_dir_all(&id).unwrap();
    for i in 0..count {
        let img = image::GrayImage::from_fn(24, 20, |x, y| image::Luma([shade.wrapping_add((x + y + i as u32) as u8)]));
        let ext = ["pgm", "png", "jpg"][i % 3];
        img.save(id.join(format!("{name}_{:04}.{ext}", i + 1))).unwrap();
    }
}

fn tree(tag: &str) -> std::path::PathBuf {
    let root = std::env::temp_dir().join(format!("centerloss-folder-{tag}-{}", std::process::id()));
    std::fs::remove_dir_all(&root).ok();
    write_images(&root, "alice", 3, 10);
    write_images(&root, "bob", 4, 200);
    write_images(&root, "carol", 2, 90);
    // A truncated PNG, a non-image file and an empty identity folder.
    std::fs::write(root.join("bob/bob_9999.png"), b"\x89PNG\r\n\x1a\n truncated").unwrap();
    std::fs::write(root.join("bob/notes.txt"), b"not an image").unwrap();
    std::fs::create_dir_all(root.join("dave")).unwrap();
    root
}

#[test]
fn reads_pgm_png_jpeg_and_skips_what_it_cannot_read() {
    let root = tree("read");
    let f = decode(&root, [1, 16, 16]).unwrap();
    assert_eq!(f.identities, vec!["alice", "bob", "carol"]);
    assert_eq!(f.data.len(), 9);
    assert_eq!(f.data.labels, vec![0, 0, 0, 1, 1, 1, 1, 2, 2]);
    assert_eq!(f.data.images.len(), 9 * 256);
    assert!(f.data.images.iter().all(|v| (-1.0..=1.0).contains(v)));
    assert_eq!(f.skipped.len(), 1);
    assert!(f.skipped[0].0.ends_with("bob/bob_9999.png"));
    // Dark alice and bright bob stay apart after resizing.
    let mean = |i: usize| f.data.image(i).iter().sum::<f32>() / 256.0;
    assert!(mean(0) < -0.5 && mean(3) > 0.5, "{} {}", mean(0), mean(3));
    let rgb = decode(&root, [3, 8, 8]).unwrap();
    assert_eq!(rgb.data.images.len(), 9 * 3 * 64);

    let (train, test, held) = f.into_split_identities(0.34, 5).unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(train.len() + test.len(), 9);
    assert_eq!(test.num_classes(), 1);
    assert_eq!(train.num_classes(), 2);
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn empty_or_missing_folders_are_clear_errors() {
    let root = std::env::temp_dir().join(format!("centerloss-folder-empty-{}", std::process::id()));
    std::fs::create_dir_all(root.join("nobody")).unwrap();
    let err = decode(&root, [1, 8, 8]).unwrap_err();
    assert!(matches!(err, Error::Data(_)) && err.to_string().contains("no readable images"), "{err}");
    let err = decode(&root.join("missing"), [1, 8, 8]).unwrap_err();
    assert!(err.to_string().contains("does not exist: give a folder of identity folders"), "{err}");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn list_files_and_pairs_files() {
    let root = tree("list");
    let list = root.join("list.txt");
    std::fs::write(
        &list,
        "# path label\nalice/alice_0001.pgm 7\nbob/bob_0002.png 3\nalice/alice_0002.png 7\nbob/bob_9999.png 3\n",
    )
    .unwrap();
    let f = decode(&list, [1, 8, 8]).unwrap();
    assert_eq!(f.data.labels, vec![0, 1, 0]);
    assert_eq!(f.identities, vec!["7", "3"]);
    assert_eq!(f.skipped.len(), 1);
    std::fs::write(&list, "alice/alice_0001.pgm\n").unwrap();
    assert!(decode(&list, [1, 8, 8]).is_err());

    let all = decode(&root, [1, 8, 8]).unwrap();
    let pairs = parse_pairs("10\t300\nalice 1 3\nalice 2 bob 4\n", &numbered(&all)).unwrap();
    assert_eq!(pairs.len(), 2);
    assert!(pairs[0].genuine && !pairs[1].genuine);
    assert_eq!((pairs[0].a, pairs[0].b, pairs[1].a, pairs[1].b), (0, 2, 1, 6));
    assert!(parse_pairs("alice 1 9\n", &numbered(&all)).is_err());
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn a_generated_set_written_as_a_folder_reads_back() {
    use centerloss::data::faces::FaceSetConfig;
    use centerloss::data::folder::write_folder;
    let cfg = FaceSetConfig {
        train_identities: 3,
        test_identities: 0,
        images_per_identity: 4,
        resolution: 16,
        ..Default::default()
    };
    let set = cfg.generate(0, 3);
    let root = std::env::temp_dir().join(format!("centerloss-folder-written-{}", std::process::id()));
    std::fs::remove_dir_all(&root).ok();
    assert_eq!(write_folder(&set, &root, |l| format!("person{l}")).unwrap(), 12);
    let back = decode(&root, cfg.shape()).unwrap();
    assert_eq!(back.identities, ["person0", "person1", "person2"]);
    assert_eq!(back.data.labels, set.labels);
    // 8-bit PNGs: every pixel within half a grey level of the original.
    let worst = back.data.images.iter().zip(&set.images).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst <= 0.5 / 127.5 + 1e-6, "{worst}");
    std::fs::remove_dir_all(&root).ok();
}

/// One function says what a path is; training takes folders, lists and packs, using a
/// model takes an image or loose images too.
#[test]
fn the_kind_of_an_input_is_decided_in_one_place() {
    use centerloss::data::InputKind;
    let root = tree("kinds");
    let list = root.join("list.txt");
    std::fs::write(&list, "alice/alice_0001.pgm 7\n").unwrap();
    let image = root.join("alice/alice_0001.pgm");
    let npy = root.join("rows.npy");
    std::fs::write(&npy, b"not read").unwrap();
    std::fs::write(root.join("loose.png"), std::fs::read(root.join("bob/bob_0002.png")).unwrap()).unwrap();
    let kinds =
        [(&root, InputKind::Folder), (&list, InputKind::List), (&image, InputKind::Image), (&npy, InputKind::Npy)];
    for (path, kind) in kinds {
        assert_eq!(InputKind::of(path).unwrap(), kind, "{}", path.display());
    }
    assert!(InputKind::of(&root.join("missing")).unwrap_err().to_string().contains("does not exist"));
    let err = ImageSource::open(&image).err().unwrap().to_string();
    assert!(err.contains("is one image: train on a folder"), "{err}");
    assert_eq!(ImageSource::open_any(&image).unwrap().len(), 1);
    // The loose image is listed for a model (identity ""), not for training.
    let (training, any) = (ImageSource::open(&root).unwrap(), ImageSource::open_any(&root).unwrap());
    assert_eq!(any.len(), training.len() + 1);
    assert_eq!(any.identity(any.len() - 1), "");
    std::fs::remove_dir_all(&root).ok();
}
