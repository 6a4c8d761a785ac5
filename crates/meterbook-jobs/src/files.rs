//! The report file store: where finished reports live until their retention
//! ends. A small trait so an object store can replace the directory: with the
//! `s3` feature, [`crate::s3_files::S3ReportFiles`] keeps them in a bucket
//! every node of a multi-node deployment reaches.

use std::io::{self, Read, Seek, Write};
use std::path::PathBuf;

/// A report file being written. Nothing is visible under its name until
/// [`PendingFile::commit`]; dropping it uncommitted leaves nothing behind.
pub trait PendingFile: Write + Send {
    fn commit(self: Box<Self>) -> io::Result<()>;
}

pub trait ReadSeek: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeek for T {}

/// A stored report opened for reading.
pub struct ReportFile {
    pub len: u64,
    pub reader: Box<dyn ReadSeek>,
}

pub trait ReportFiles: Send + Sync {
    fn create(&self, name: &str) -> io::Result<Box<dyn PendingFile>>;
    /// The file, or `None` if there is none by that name.
    fn open(&self, name: &str) -> io::Result<Option<ReportFile>>;
    /// Removes a file; a missing file is not an error.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Removes what interrupted writes left behind; returns how many.
    fn sweep_partial(&self) -> io::Result<usize>;
}

/// Files in one directory. Writes go to a temporary file in the same
/// directory, are fsynced, then renamed over the final name (and the
/// directory fsynced), so a reader sees a whole file or none, even after a crash.
pub struct DirReportFiles {
    root: PathBuf,
}

const PARTIAL_PREFIX: &str = ".partial-";

impl DirReportFiles {
    pub fn new(root: impl Into<PathBuf>) -> io::Result<DirReportFiles> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(DirReportFiles { root })
    }

    fn path(&self, name: &str) -> io::Result<PathBuf> {
        check_name(name)?;
        Ok(self.root.join(name))
    }
}

/// Names come from job ids; refuse anything that could leave the directory
/// (or the key prefix), and names starting with a dot, which are the stores'
/// own (partial writes).
pub(crate) fn check_name(name: &str) -> io::Result<()> {
    if name.is_empty()
        || name.starts_with('.')
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a report file name: {name:?}"),
        ));
    }
    Ok(())
}

struct DirPending {
    tmp: tempfile::NamedTempFile,
    target: PathBuf,
    root: PathBuf,
}

impl Write for DirPending {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tmp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tmp.flush()
    }
}

impl PendingFile for DirPending {
    fn commit(self: Box<Self>) -> io::Result<()> {
        let DirPending { tmp, target, root } = *self;
        tmp.as_file().sync_all()?;
        tmp.persist(&target).map_err(|e| e.error)?;
        // The rename is durable once the directory is.
        std::fs::File::open(&root)?.sync_all()
    }
}

impl ReportFiles for DirReportFiles {
    fn create(&self, name: &str) -> io::Result<Box<dyn PendingFile>> {
        let target = self.path(name)?;
        let tmp = tempfile::Builder::new()
            .prefix(PARTIAL_PREFIX)
            .tempfile_in(&self.root)?;
        Ok(Box::new(DirPending {
            tmp,
            target,
            root: self.root.clone(),
        }))
    }

    fn open(&self, name: &str) -> io::Result<Option<ReportFile>> {
        match std::fs::File::open(self.path(name)?) {
            Ok(f) => {
                let len = f.metadata()?.len();
                Ok(Some(ReportFile {
                    len,
                    reader: Box::new(f),
                }))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        match std::fs::remove_file(self.path(name)?) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn sweep_partial(&self) -> io::Result<usize> {
        let mut n = 0;
        for e in std::fs::read_dir(&self.root)? {
            let e = e?;
            if e.file_name().to_string_lossy().starts_with(PARTIAL_PREFIX) {
                std::fs::remove_file(e.path())?;
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_appears_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let files = DirReportFiles::new(dir.path()).unwrap();
        let mut p = files.create("a.csv").unwrap();
        p.write_all(b"hello").unwrap();
        assert!(files.open("a.csv").unwrap().is_none());
        p.commit().unwrap();
        let mut f = files.open("a.csv").unwrap().unwrap();
        assert_eq!(f.len, 5);
        let mut s = String::new();
        f.reader.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
        // Dropped uncommitted: nothing stays.
        let mut p = files.create("b.csv").unwrap();
        p.write_all(b"x").unwrap();
        drop(p);
        assert!(files.open("b.csv").unwrap().is_none());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        files.remove("a.csv").unwrap();
        files.remove("a.csv").unwrap();
        assert!(files.open("a.csv").unwrap().is_none());
    }

    #[test]
    fn names_cannot_leave_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let files = DirReportFiles::new(dir.path()).unwrap();
        for bad in ["../x", "/etc/passwd", ".partial-x", "", "a/b"] {
            assert!(files.open(bad).is_err(), "{bad}");
        }
    }
}
