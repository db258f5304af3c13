//! A bucket in a local folder, with the same create-only and compare-and-swap semantics as the
//! cloud stores (object_store's local backend has no conditional update).
//!
//! Writes go to a temporary file in the target's folder, are synced, then published: a create
//! by `link` (fails if the name exists, atomically), an update by `rename` while holding an
//! exclusive `flock` on the folder, after checking the current content's version. A version is
//! the sha256 of the content, so it cannot repeat the way inode/mtime tags can.
//!
//! The folder's content is as untrusted as a cloud bucket's: every path is walked one part at a
//! time from the root (`openat`, `O_NOFOLLOW`), so a symbolic link is never followed, and only
//! regular files are read (opened non-blocking, then checked), so a FIFO or a device is an error
//! naming its key instead of a hang or an endless read. The root itself must exist: a bucket is
//! never created by opening it, or a mistyped path would read as an empty fleet.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use super::{Error, Version};

/// A bucket rooted at a folder.
#[derive(Debug, Clone)]
pub struct Folder {
    root: PathBuf,
}

/// An object's folder, opened, and the object's name in it.
struct Parent {
    dir: OwnedFd,
    name: String,
}

impl Folder {
    /// Opens the existing folder at `root` (followed if it is a link: the root is the
    /// operator's choice, unlike anything below it).
    pub fn open(root: &Path) -> Result<Self, Error> {
        let refuse = |reason: &str| {
            Err(io_error(
                root,
                "open the bucket folder",
                io::Error::other(reason.to_string()),
            ))
        };
        match fs::metadata(root) {
            Ok(meta) if meta.is_dir() => Ok(Self {
                root: root.to_path_buf(),
            }),
            Ok(_) => refuse("it is not a folder"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => refuse(
                "it does not exist (a bucket folder is never created by outpost: create it first)",
            ),
            Err(source) => Err(io_error(root, "open the bucket folder", source)),
        }
    }

    /// The file of an object key (whose parts were validated by the layout).
    pub fn file(&self, key: &object_store::path::Path) -> PathBuf {
        let mut path = self.root.clone();
        path.extend(key.parts().map(|p| p.as_ref().to_string()));
        path
    }

    /// The version of content held in a folder bucket.
    pub fn version_of(bytes: &[u8]) -> Version {
        Version {
            e_tag: Some(format!("sha256:{}", crate::format::sha256_hex(bytes))),
            version: None,
        }
    }

    /// Reads a whole object.
    pub fn get(&self, key: &object_store::path::Path) -> Result<(Bytes, Version), Error> {
        let path = self.file(key);
        let (file, size) = self.open_regular(key)?;
        let limit = super::MAX_DOCUMENT_BYTES;
        let too_large = |size| Error::TooLarge {
            key: key.to_string(),
            size,
            limit,
        };
        if size > limit {
            return Err(too_large(size));
        }
        // Bounded even if the file grows while it is read.
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| io_error(&path, "read", e))?;
        if bytes.len() as u64 > limit {
            return Err(too_large(bytes.len() as u64));
        }
        let version = Self::version_of(&bytes);
        Ok((Bytes::from(bytes), version))
    }

    /// Opens an object for streaming.
    pub fn open_read(&self, key: &object_store::path::Path) -> Result<File, Error> {
        Ok(self.open_regular(key)?.0)
    }

    /// Opens an object for streaming, with its size.
    pub fn open_sized(&self, key: &object_store::path::Path) -> Result<(File, u64), Error> {
        self.open_regular(key)
    }

    /// The size of an object.
    pub fn size(&self, key: &object_store::path::Path) -> Result<u64, Error> {
        Ok(self.open_regular(key)?.1)
    }

    /// Writes an object that must not exist yet.
    pub fn create(&self, key: &object_store::path::Path, bytes: &[u8]) -> Result<Version, Error> {
        let path = self.file(key);
        let parent = self.parent(key, true)?.ok_or_else(|| missing(key))?;
        let temp = write_temp(&parent, &path, bytes)?;
        let linked = rustix::fs::linkat(
            &parent.dir,
            &temp,
            &parent.dir,
            &parent.name,
            AtFlags::empty(),
        );
        // The temporary name is removed whether or not the link was made.
        let _ = rustix::fs::unlinkat(&parent.dir, &temp, AtFlags::empty());
        match linked {
            Ok(()) => {
                sync_dir(&parent, &path)?;
                Ok(Self::version_of(bytes))
            }
            Err(Errno::EXIST) => Err(Error::AlreadyExists {
                key: key.to_string(),
            }),
            Err(e) => Err(io_error(&path, "publish", e.into())),
        }
    }

    /// Replaces an object if its current version is `expected`.
    pub fn update(
        &self,
        key: &object_store::path::Path,
        bytes: &[u8],
        expected: &Version,
    ) -> Result<Version, Error> {
        let path = self.file(key);
        let conflict = || Error::Conflict {
            key: key.to_string(),
        };
        let parent = self.parent(key, false)?.ok_or_else(conflict)?;
        // Held until `parent.dir` is closed, when this function returns.
        rustix::fs::flock(&parent.dir, FlockOperation::LockExclusive)
            .map_err(|e| io_error(parent_of(&path), "lock", e.into()))?;
        let current = match open_regular_in(&parent, &path, key) {
            Ok((file, _)) => {
                let mut current = Vec::new();
                file.take(super::MAX_DOCUMENT_BYTES + 1)
                    .read_to_end(&mut current)
                    .map_err(|e| io_error(&path, "read", e))?;
                Self::version_of(&current)
            }
            Err(Error::NotFound { .. }) => return Err(conflict()),
            Err(e) => return Err(e),
        };
        if &current != expected {
            return Err(conflict());
        }
        let temp = write_temp(&parent, &path, bytes)?;
        replace(&parent, &temp, &path)?;
        Ok(Self::version_of(bytes))
    }

    /// Writes an object whatever is there.
    pub fn overwrite(
        &self,
        key: &object_store::path::Path,
        bytes: &[u8],
    ) -> Result<Version, Error> {
        let path = self.file(key);
        let parent = self.parent(key, true)?.ok_or_else(|| missing(key))?;
        let temp = write_temp(&parent, &path, bytes)?;
        replace(&parent, &temp, &path)?;
        Ok(Self::version_of(bytes))
    }

    /// Names of the sub-folders of `dir` (the "common prefixes" of a delimited listing);
    /// links to folders are not sub-folders. A missing `dir` has none.
    pub fn list_dirs(&self, dir: &object_store::path::Path) -> Result<Vec<String>, Error> {
        let path = self.file(dir);
        let parts: Vec<String> = dir.parts().map(|p| p.as_ref().to_string()).collect();
        let Some(fd) = self.walk(&parts, false)? else {
            return Ok(Vec::new());
        };
        let entries =
            rustix::fs::Dir::read_from(&fd).map_err(|e| io_error(&path, "list", e.into()))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&path, "list", e.into()))?;
            let Ok(name) = entry.file_name().to_str() else {
                continue;
            };
            if name == "." || name == ".." {
                continue;
            }
            let file_type = match entry.file_type() {
                // Some file systems do not say in the listing.
                FileType::Unknown => rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW)
                    .map(|stat| FileType::from_raw_mode(stat.st_mode))
                    .map_err(|e| io_error(&path.join(name), "stat", e.into()))?,
                known => known,
            };
            if file_type == FileType::Directory {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Opens the object `key` if it is a regular file, with its size.
    fn open_regular(&self, key: &object_store::path::Path) -> Result<(File, u64), Error> {
        let parent = self.parent(key, false)?.ok_or_else(|| missing(key))?;
        open_regular_in(&parent, &self.file(key), key)
    }

    /// The opened folder of `key` and its name there; `None` if a folder on the way is missing
    /// and `create` is false.
    fn parent(
        &self,
        key: &object_store::path::Path,
        create: bool,
    ) -> Result<Option<Parent>, Error> {
        let mut parts: Vec<String> = key.parts().map(|p| p.as_ref().to_string()).collect();
        let Some(name) = parts.pop() else {
            return Err(io_error(
                &self.root,
                "find the folder of",
                io::Error::other("the key is empty"),
            ));
        };
        check_part(&self.file(key), &name)?;
        Ok(self.walk(&parts, create)?.map(|dir| Parent { dir, name }))
    }

    /// Opens the folder `parts` below the root, one part at a time and never through a link,
    /// creating missing parts if `create`; `None` if a part is missing and not created.
    fn walk(&self, parts: &[String], create: bool) -> Result<Option<OwnedFd>, Error> {
        let directory = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let mut path = self.root.clone();
        let mut dir = rustix::fs::openat(rustix::fs::CWD, &self.root, directory, Mode::empty())
            .map_err(|e| io_error(&path, "open the bucket folder", e.into()))?;
        for part in parts {
            path.push(part);
            check_part(&path, part)?;
            let open = |dir: &OwnedFd| {
                rustix::fs::openat(
                    dir,
                    part.as_str(),
                    directory | OFlags::NOFOLLOW,
                    Mode::empty(),
                )
            };
            let next = match open(&dir) {
                Err(Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(&dir, part.as_str(), Mode::from_raw_mode(0o777)) {
                        // Another writer may have made it meanwhile.
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(io_error(&path, "create folder", e.into())),
                    }
                    open(&dir)
                }
                other => other,
            };
            dir = match next {
                Ok(next) => next,
                Err(Errno::NOENT) => return Ok(None),
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    return Err(io_error(
                        &path,
                        "open folder",
                        refusal(&dir, part, "a folder"),
                    ));
                }
                Err(e) => return Err(io_error(&path, "open folder", e.into())),
            };
        }
        Ok(Some(dir))
    }
}

/// A key part is a name inside one folder, never a way out of it (the layout validates keys;
/// this holds whatever the caller).
fn check_part(path: &Path, part: &str) -> Result<(), Error> {
    if part.is_empty() || part == "." || part == ".." || part.contains(['/', '\0']) {
        return Err(io_error(
            path,
            "open",
            io::Error::other(format!("{part:?} is not a file name")),
        ));
    }
    Ok(())
}

/// Opens `parent.name` if it is a regular file (never a link; a FIFO is opened without waiting
/// for a writer and then refused), with its size.
fn open_regular_in(
    parent: &Parent,
    path: &Path,
    key: &object_store::path::Path,
) -> Result<(File, u64), Error> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat(&parent.dir, parent.name.as_str(), flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Err(missing(key)),
        Err(Errno::LOOP) => {
            return Err(io_error(
                path,
                "open",
                refusal(&parent.dir, &parent.name, "a regular file"),
            ));
        }
        Err(e) => return Err(io_error(path, "open", e.into())),
    };
    let stat = rustix::fs::fstat(&fd).map_err(|e| io_error(path, "stat", e.into()))?;
    let file_type = FileType::from_raw_mode(stat.st_mode);
    if file_type != FileType::RegularFile {
        return Err(io_error(path, "open", refused(file_type, "a regular file")));
    }
    // Regular files ignore O_NONBLOCK; it stays set.
    Ok((File::from(fd), u64::try_from(stat.st_size).unwrap_or(0)))
}

/// Why `name` in `dir` cannot be opened as `wanted`: what it is instead.
fn refusal(dir: &OwnedFd, name: &str, wanted: &str) -> io::Error {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => refused(FileType::from_raw_mode(stat.st_mode), wanted),
        Err(e) => e.into(),
    }
}

fn refused(file_type: FileType, wanted: &str) -> io::Error {
    let what = match file_type {
        FileType::Symlink => {
            return io::Error::other(
                "it is a symbolic link, which is never followed inside a bucket folder",
            );
        }
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a folder",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Unknown => "of an unknown type",
    };
    io::Error::other(format!("it is {what}, not {wanted}"))
}

fn missing(key: &object_store::path::Path) -> Error {
    Error::NotFound {
        key: key.to_string(),
    }
}

/// Writes `bytes` to a new temporary file beside `path` (in `parent`), synced to disk; returns
/// its name.
fn write_temp(parent: &Parent, path: &Path, bytes: &[u8]) -> Result<String, Error> {
    let temp = format!(".{}.{:016x}.tmp", parent.name, rand::random::<u64>());
    let temp_path = parent_of(path).join(&temp);
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(
        &parent.dir,
        temp.as_str(),
        flags,
        Mode::from_raw_mode(0o666),
    )
    .map_err(|e| io_error(&temp_path, "create", e.into()))?;
    let mut file = File::from(fd);
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| {
            let _ = rustix::fs::unlinkat(&parent.dir, temp.as_str(), AtFlags::empty());
            io_error(&temp_path, "write", e)
        })?;
    Ok(temp)
}

/// Renames the temporary file `temp` over the object and syncs the folder.
fn replace(parent: &Parent, temp: &str, path: &Path) -> Result<(), Error> {
    if let Err(e) = rustix::fs::renameat(&parent.dir, temp, &parent.dir, parent.name.as_str()) {
        let _ = rustix::fs::unlinkat(&parent.dir, temp, AtFlags::empty());
        return Err(io_error(path, "replace", e.into()));
    }
    sync_dir(parent, path)
}

fn parent_of(path: &Path) -> &Path {
    path.parent().unwrap_or(path)
}

fn sync_dir(parent: &Parent, path: &Path) -> Result<(), Error> {
    rustix::fs::fsync(&parent.dir).map_err(|e| io_error(parent_of(path), "sync", e.into()))
}

fn io_error(path: &Path, operation: &'static str, source: io::Error) -> Error {
    Error::Folder {
        path: path.display().to_string(),
        operation,
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    fn key(text: &str) -> object_store::path::Path {
        object_store::path::Path::from(text)
    }

    const HEAD: &str = "outpost/v1/clusters/a/head.json";

    /// A bucket folder with cluster `a`'s folder made, and a folder outside it.
    fn bucket() -> (tempfile::TempDir, Folder, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("bucket");
        fs::create_dir_all(root.join("outpost/v1/clusters/a")).unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        (dir, Folder::open(&root).unwrap(), root)
    }

    #[test]
    fn a_fifo_is_an_error_naming_the_key_not_a_hang() {
        let (_dir, folder, root) = bucket();
        let fifo = root.join(HEAD);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = folder.clone();
        std::thread::spawn(move || {
            let _ = tx.send(
                reader
                    .get(&key(HEAD))
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            );
        });
        let result = match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(result) => result,
            Err(_) => {
                // Unblock the reader stuck opening the FIFO, so the test ends.
                let _ = fs::OpenOptions::new().write(true).open(&fifo);
                panic!("reading a FIFO hung");
            }
        };
        let e = result.unwrap_err();
        assert!(e.contains(HEAD) && e.contains("not a regular file"), "{e}");
        for e in [
            folder.size(&key(HEAD)).unwrap_err().to_string(),
            folder.open_read(&key(HEAD)).unwrap_err().to_string(),
        ] {
            assert!(e.contains(HEAD) && e.contains("not a regular file"), "{e}");
        }
    }

    #[test]
    fn symbolic_links_are_never_followed() {
        let (dir, folder, root) = bucket();
        let secret = dir.path().join("outside/secret");
        fs::write(&secret, b"not the bucket's").unwrap();
        symlink(&secret, root.join(HEAD)).unwrap();
        for e in [
            folder.get(&key(HEAD)).unwrap_err().to_string(),
            folder.size(&key(HEAD)).unwrap_err().to_string(),
            folder.open_read(&key(HEAD)).unwrap_err().to_string(),
        ] {
            assert!(e.contains(HEAD) && e.contains("symbolic link"), "{e}");
        }
        // A linked folder on the way to the object is refused the same way, for reads and
        // writes: nothing is read or written outside the bucket.
        fs::write(dir.path().join("outside/head.json"), b"{}").unwrap();
        symlink(
            dir.path().join("outside"),
            root.join("outpost/v1/clusters/b"),
        )
        .unwrap();
        let linked = "outpost/v1/clusters/b/head.json";
        let e = folder.get(&key(linked)).unwrap_err().to_string();
        assert!(
            e.contains("clusters/b") && e.contains("symbolic link"),
            "{e}"
        );
        let e = folder
            .create(&key("outpost/v1/clusters/b/identity.json"), b"x")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("clusters/b") && e.contains("symbolic link"),
            "{e}"
        );
        assert!(!dir.path().join("outside/identity.json").exists());
        // Listing: a linked cluster folder is not a cluster, and a linked clusters folder is an
        // error rather than someone else's fleet.
        assert!(folder.list_dirs(&key("outpost/v1/clusters")).unwrap() == ["a"]);
        fs::create_dir_all(dir.path().join("fleet/x")).unwrap();
        fs::rename(root.join("outpost/v1/clusters"), dir.path().join("moved")).unwrap();
        symlink(dir.path().join("fleet"), root.join("outpost/v1/clusters")).unwrap();
        let e = folder
            .list_dirs(&key("outpost/v1/clusters"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("outpost/v1/clusters") && e.contains("symbolic link"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_bucket_folder_is_an_error_and_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing/dir");
        let e = Folder::open(&missing).unwrap_err().to_string();
        assert!(
            e.contains("missing/dir") && e.contains("does not exist"),
            "{e}"
        );
        assert!(!missing.exists());
        let file = dir.path().join("file");
        fs::write(&file, b"").unwrap();
        let e = Folder::open(&file).unwrap_err().to_string();
        assert!(e.contains("not a folder"), "{e}");
    }

    #[test]
    fn writers_create_the_folders_below_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let folder = Folder::open(dir.path()).unwrap();
        let version = folder.create(&key(HEAD), b"h1").unwrap();
        assert_eq!(folder.get(&key(HEAD)).unwrap().0.as_ref(), b"h1");
        folder.update(&key(HEAD), b"h2", &version).unwrap();
        folder
            .overwrite(&key("outpost/v1/clusters/a/identity.json"), b"i")
            .unwrap();
        assert_eq!(folder.size(&key(HEAD)).unwrap(), 2);
        assert_eq!(
            folder.list_dirs(&key("outpost/v1/clusters")).unwrap(),
            ["a"]
        );
        assert!(
            folder
                .list_dirs(&key("outpost/v1/none"))
                .unwrap()
                .is_empty()
        );
    }
}
