//! Files as the crate reads and writes them. Only regular files are read (a named pipe, a
//! device or a folder given as a file is an error, never a hang or an endless read), with
//! a byte cap where a format has no length of its own. Every output is written to a
//! temporary file beside its place and renamed into it, so a killed or failed command
//! leaves the old file or none; an output of several files is renamed into place only
//! once all of them are written; and a command refuses an output that is one of its inputs.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Temporary files are `.<name><TMP_MARK><pid>` beside the file they become.
pub(crate) const TMP_MARK: &str = ".tmp-";

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}

/// What went wrong with a file, without its name (for callers that name it themselves).
pub fn reason(error: &Error) -> String {
    match error {
        Error::Io { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

/// [`Error::Io`] for `path` with `why` as its reason.
fn refused(path: &Path, why: String) -> Error {
    Error::Io { path: path.display().to_string(), source: std::io::Error::new(std::io::ErrorKind::InvalidInput, why) }
}

/// What a non-regular file is, in words.
fn kind_of(kind: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a named pipe (FIFO)";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading if it is a regular file (links followed). Its type is checked
/// before it is opened (opening a named pipe waits for a writer) and again on the handle.
pub fn open(path: &Path) -> Result<File> {
    let not_a_file = |kind| refused(path, format!("{kind}, not a regular file"));
    let kind = std::fs::metadata(path).map_err(io_error(path))?.file_type();
    if !kind.is_file() {
        return Err(not_a_file(kind_of(kind)));
    }
    let file = File::open(path).map_err(io_error(path))?;
    let kind = file.metadata().map_err(io_error(path))?.file_type();
    if !kind.is_file() {
        return Err(not_a_file(kind_of(kind)));
    }
    Ok(file)
}

/// The bytes of the regular file `path`, refused when it holds more than `max` bytes
/// (`what` names the format in the message).
pub fn read(path: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    let file = open(path)?;
    let len = file.metadata().map_err(io_error(path))?.len();
    if len > max {
        return Err(refused(path, format!("{len} bytes, more than the {max} a {what} may hold")));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // A file that grows while it is read stops at the cap.
    file.take(max + 1).read_to_end(&mut bytes).map_err(io_error(path))?;
    if bytes.len() as u64 > max {
        return Err(refused(path, format!("more than the {max} bytes a {what} may hold")));
    }
    Ok(bytes)
}

/// The text of the regular file `path` (UTF-8), at most `max` bytes.
pub fn read_text(path: &Path, max: u64, what: &str) -> Result<String> {
    String::from_utf8(read(path, max, what)?)
        .map_err(|e| refused(path, format!("a {what} is text, but byte {} is not UTF-8", e.utf8_error().valid_up_to())))
}

/// Where `path` is staged before it is renamed into place: `.<name>.tmp-<pid>` beside it,
/// keeping its extension last (`.<stem>.tmp-<pid>.<ext>`) for writers that choose a format
/// by the name (the plots).
fn staging_path(path: &Path) -> PathBuf {
    let pid = std::process::id();
    let name = match (path.file_stem(), path.extension()) {
        (Some(stem), Some(ext)) => {
            format!(".{}{TMP_MARK}{pid}.{}", stem.to_string_lossy(), ext.to_string_lossy())
        }
        _ => format!(".{}{TMP_MARK}{pid}", path.file_name().map_or("output".into(), |n| n.to_string_lossy())),
    };
    path.with_file_name(name)
}

/// Outputs staged beside their places, renamed into place together by
/// [`Staged::commit`]; those not committed are removed when it is dropped (a failed
/// command leaves none of its outputs, and no temporary).
#[derive(Debug, Default)]
pub struct Staged {
    /// (temporary, destination) of each output.
    files: Vec<(PathBuf, PathBuf)>,
}

impl Staged {
    /// Nothing staged yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `bytes` to a temporary file beside `path` (flushed to disk).
    pub fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<()> {
        self.write_with(path, |tmp| {
            let mut f = File::create(tmp).map_err(io_error(path))?;
            f.write_all(bytes).map_err(io_error(path))
        })
    }

    /// Lets `write` create the temporary file it is given for `path` (a writer that takes
    /// a path, like the plots); the file is flushed to disk after it.
    pub fn write_with(&mut self, path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        let tmp = staging_path(path);
        self.files.push((tmp.clone(), path.to_path_buf()));
        write(&tmp)?;
        File::open(&tmp).and_then(|f| f.sync_all()).map_err(io_error(path))
    }

    /// A temporary path beside `path` for a writer that writes it in parts (a pack), and
    /// removed unless committed.
    pub fn path_for(&mut self, path: &Path) -> PathBuf {
        let tmp = staging_path(path);
        self.files.push((tmp.clone(), path.to_path_buf()));
        tmp
    }

    /// Renames every staged file into place, in the order staged.
    pub fn commit(mut self) -> Result<()> {
        for (tmp, path) in std::mem::take(&mut self.files) {
            if let Err(e) = std::fs::rename(&tmp, &path) {
                std::fs::remove_file(&tmp).ok();
                return Err(io_error(&path)(e));
            }
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        for (tmp, _) in &self.files {
            std::fs::remove_file(tmp).ok();
        }
    }
}

/// Writes `bytes` to `path` through a temporary file beside it (fsync, rename): readers see
/// the old file or the new one, never half of one, and a failed write leaves no temporary.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut staged = Staged::new();
    staged.write(path, bytes)?;
    staged.commit()
}

/// Whether `a` and `b` name the same existing file (the same file after links, or the same
/// file system entry: a hard link).
fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) else { return false };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if ma.dev() == mb.dev() && ma.ino() == mb.ino() {
            return true;
        }
    }
    let _ = (ma, mb);
    matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// Checks, before any work, that `output` can be written: it is none of `inputs` (the same
/// file, through any name), not a folder, and its folder takes a new file; with
/// `make_folder` a missing folder is made (and its parents), otherwise it must exist.
/// `option` names the output in messages (`--out`).
pub fn check_output(output: &Path, option: &str, inputs: &[&Path], make_folder: bool) -> Result<()> {
    if let Some(input) = inputs.iter().find(|input| same_file(output, input)) {
        return Err(Error::Config(format!(
            "{option} {} is the file {}, an input of this command: writing it would replace that input; write elsewhere",
            output.display(),
            input.display()
        )));
    }
    if output.is_dir() {
        return Err(Error::Config(format!("{option} {} is a folder: name a file", output.display())));
    }
    let folder = match output.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(folder) => folder,
        None => Path::new("."),
    };
    if !make_folder && !folder.exists() {
        return Err(Error::Config(format!(
            "{option} {}: the folder {} does not exist",
            output.display(),
            folder.display()
        )));
    }
    check_folder(folder, option)
}

/// Makes `folder` (and its parents) where needed and checks that it takes a new file;
/// `option` names it in messages.
pub fn check_folder(folder: &Path, option: &str) -> Result<()> {
    if let Some(file) = folder.ancestors().find(|a| a.is_file()) {
        return Err(Error::Config(format!("{option}: {} is a file, not a folder", file.display())));
    }
    std::fs::create_dir_all(folder).map_err(io_error(folder))?;
    let probe = folder.join(format!(".centerloss-write-check{TMP_MARK}{}", std::process::id()));
    File::create(&probe)
        .map_err(|e| Error::Config(format!("{option}: cannot write into {}: {e}", folder.display())))?;
    std::fs::remove_file(&probe).ok();
    Ok(())
}

/// `name` as text: as it is when it is UTF-8, otherwise with each byte that is not escaped
/// as `\xNN` (Python's `backslashreplace`), so that two names never read as one.
pub fn name_text(name: &std::ffi::OsStr) -> String {
    if let Some(text) = name.to_str() {
        return text.to_string();
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let mut out = String::new();
        for chunk in name.as_bytes().utf8_chunks() {
            out.push_str(chunk.valid());
            for byte in chunk.invalid() {
                out.push_str(&format!("\\x{byte:02x}"));
            }
        }
        out
    }
    #[cfg(not(unix))]
    name.to_string_lossy().into_owned()
}

/// A path's bytes as the system stores them (on Unix, whatever they are; elsewhere its
/// UTF-8 text): what a CSV of file names holds, read back by [`path_from_bytes`].
pub fn path_bytes(path: &Path) -> std::borrow::Cow<'_, [u8]> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        std::borrow::Cow::Borrowed(path.as_os_str().as_bytes())
    }
    #[cfg(not(unix))]
    match path.to_string_lossy() {
        std::borrow::Cow::Borrowed(text) => std::borrow::Cow::Borrowed(text.as_bytes()),
        std::borrow::Cow::Owned(text) => std::borrow::Cow::Owned(text.into_bytes()),
    }
}

/// The path whose [`path_bytes`] are `bytes`.
pub fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
    }
    #[cfg(not(unix))]
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("centerloss-files-{tag}-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn only_regular_files_are_read_and_caps_hold() {
        let d = dir("read");
        let file = d.join("a.bin");
        std::fs::write(&file, b"12345").unwrap();
        assert_eq!(read(&file, 5, "test file").unwrap(), b"12345");
        let err = read(&file, 4, "test file").unwrap_err().to_string();
        assert!(err.contains("5 bytes, more than the 4 a test file may hold"), "{err}");
        let err = read(&d, 10, "test file").unwrap_err().to_string();
        assert!(err.contains("a folder, not a regular file"), "{err}");
        #[cfg(unix)]
        {
            let err = read(Path::new("/dev/zero"), 1 << 20, "test file").unwrap_err().to_string();
            assert!(err.contains("/dev/zero: a device, not a regular file"), "{err}");
        }
        std::fs::write(&file, [0xff, 0xfe]).unwrap();
        assert!(read_text(&file, 10, "list").unwrap_err().to_string().contains("not UTF-8"));
        std::fs::remove_dir_all(&d).ok();
    }

    #[cfg(unix)]
    #[test]
    fn names_that_are_not_utf8_stay_distinct_and_paths_round_trip() {
        use std::os::unix::ffi::OsStrExt;
        let (a, b) = (std::ffi::OsStr::from_bytes(b"caf\xe9"), std::ffi::OsStr::from_bytes(b"caf\xe8"));
        assert_eq!(name_text(a), "caf\\xe9");
        assert_ne!(name_text(a), name_text(b));
        assert_eq!(name_text(std::ffi::OsStr::new("café")), "café");
        let path = Path::new(std::ffi::OsStr::from_bytes(b"dir/caf\xe9\n.png"));
        assert_eq!(path_from_bytes(&path_bytes(path)), path);
    }

    #[test]
    fn staged_outputs_appear_together_or_not_at_all() {
        let d = dir("staged");
        let (a, b) = (d.join("e.npy"), d.join("e.csv"));
        std::fs::write(&a, b"old").unwrap();
        {
            let mut staged = Staged::new();
            staged.write(&a, b"new a").unwrap();
            staged.write(&b, b"new b").unwrap();
            // Dropped without a commit: the old file stays, nothing new, no temporary.
        }
        assert_eq!(std::fs::read(&a).unwrap(), b"old");
        assert!(!b.exists());
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1, "temporaries removed");
        let mut staged = Staged::new();
        staged.write(&a, b"new a").unwrap();
        staged.write_with(&b, |tmp| std::fs::write(tmp, b"new b").map_err(io_error(tmp))).unwrap();
        staged.commit().unwrap();
        assert_eq!((std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap()), (b"new a".to_vec(), b"new b".to_vec()));
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 2);
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn an_output_that_is_an_input_or_inside_a_file_is_refused() {
        let d = dir("check");
        let model = d.join("m.safetensors");
        std::fs::write(&model, b"model").unwrap();
        let err = check_output(&model, "--out", &[&model], false).unwrap_err().to_string();
        assert!(err.contains("an input of this command"), "{err}");
        let other_name = d.join("sub/../m.safetensors");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        assert!(check_output(&other_name, "--out", &[&model], false).is_err(), "the same file by another name");
        #[cfg(unix)]
        {
            let link = d.join("link.safetensors");
            std::fs::hard_link(&model, &link).unwrap();
            assert!(check_output(&link, "--out", &[&model], false).is_err(), "a hard link");
        }
        let err = check_output(&model.join("emb"), "--out", &[], true).unwrap_err().to_string();
        assert!(err.contains("m.safetensors is a file, not a folder"), "{err}");
        let err = check_output(&d.join("new/dir/e.npy"), "--out", &[&model], false).unwrap_err().to_string();
        assert!(err.contains("does not exist") && !d.join("new").exists(), "{err}");
        check_output(&d.join("new/dir/e.npy"), "--out", &[&model], true).unwrap();
        assert!(!d.join("new/dir").read_dir().unwrap().any(|_| true), "the write check leaves nothing");
        assert!(d.join("new/dir").is_dir());
        assert!(check_output(&d, "--out", &[], false).unwrap_err().to_string().contains("is a folder"));
        std::fs::remove_dir_all(&d).ok();
    }
}
