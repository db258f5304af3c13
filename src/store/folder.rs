//! A bucket in a local folder, with the same create-only and compare-and-swap semantics as the
//! cloud stores (object_store's local backend has no conditional update).
//!
//! Writes go to a temporary file in the target's folder, are synced, then published: a create
//! by `link` (fails if the name exists, atomically), an update by `rename` while holding an
//! exclusive `flock` on the folder, after checking the current content's version. A version is
//! the sha256 of the content, so it cannot repeat the way inode/mtime tags can.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{Error, Version};

/// A bucket rooted at a folder.
#[derive(Debug, Clone)]
pub struct Folder {
    root: PathBuf,
}

impl Folder {
    /// Opens (creating if needed) the folder at `root`.
    pub fn open(root: &Path) -> Result<Self, Error> {
        fs::create_dir_all(root).map_err(|source| Error::Folder {
            path: root.display().to_string(),
            operation: "create the bucket folder",
            source,
        })?;
        Ok(Self {
            root: root.to_path_buf(),
        })
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
        let size = self.size(key)?;
        if size > super::MAX_DOCUMENT_BYTES {
            return Err(Error::TooLarge {
                key: key.to_string(),
                size,
                limit: super::MAX_DOCUMENT_BYTES,
            });
        }
        let path = self.file(key);
        match fs::read(&path) {
            Ok(bytes) => {
                let version = Self::version_of(&bytes);
                Ok((Bytes::from(bytes), version))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::NotFound {
                key: key.to_string(),
            }),
            Err(source) => Err(io_error(&path, "read", source)),
        }
    }

    /// Opens an object for streaming.
    pub fn open_read(&self, key: &object_store::path::Path) -> Result<File, Error> {
        let path = self.file(key);
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound {
                key: key.to_string(),
            },
            _ => io_error(&path, "open", e),
        })
    }

    /// The size of an object.
    pub fn size(&self, key: &object_store::path::Path) -> Result<u64, Error> {
        let path = self.file(key);
        match fs::metadata(&path) {
            Ok(meta) => Ok(meta.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::NotFound {
                key: key.to_string(),
            }),
            Err(source) => Err(io_error(&path, "stat", source)),
        }
    }

    /// Writes an object that must not exist yet.
    pub fn create(&self, key: &object_store::path::Path, bytes: &[u8]) -> Result<Version, Error> {
        let path = self.file(key);
        let temp = self.write_temp(&path, bytes)?;
        let linked = fs::hard_link(&temp, &path);
        // The temporary name is removed whether or not the link was made.
        let _ = fs::remove_file(&temp);
        match linked {
            Ok(()) => {
                sync_parent(&path)?;
                Ok(Self::version_of(bytes))
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(Error::AlreadyExists {
                key: key.to_string(),
            }),
            Err(source) => Err(io_error(&path, "publish", source)),
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
        let parent = parent_of(&path)?;
        let lock = File::open(parent).map_err(|e| io_error(parent, "open for locking", e))?;
        lock.lock().map_err(|e| io_error(parent, "lock", e))?;
        let current = match fs::read(&path) {
            Ok(current) => Self::version_of(&current),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::Conflict {
                    key: key.to_string(),
                });
            }
            Err(source) => return Err(io_error(&path, "read", source)),
        };
        if &current != expected {
            return Err(Error::Conflict {
                key: key.to_string(),
            });
        }
        let temp = self.write_temp(&path, bytes)?;
        if let Err(source) = fs::rename(&temp, &path) {
            let _ = fs::remove_file(&temp);
            return Err(io_error(&path, "replace", source));
        }
        sync_parent(&path)?;
        drop(lock);
        Ok(Self::version_of(bytes))
    }

    /// Writes an object whatever is there.
    pub fn overwrite(
        &self,
        key: &object_store::path::Path,
        bytes: &[u8],
    ) -> Result<Version, Error> {
        let path = self.file(key);
        let temp = self.write_temp(&path, bytes)?;
        if let Err(source) = fs::rename(&temp, &path) {
            let _ = fs::remove_file(&temp);
            return Err(io_error(&path, "replace", source));
        }
        sync_parent(&path)?;
        Ok(Self::version_of(bytes))
    }

    /// Names of the sub-folders of `dir` (the "common prefixes" of a delimited listing).
    pub fn list_dirs(&self, dir: &object_store::path::Path) -> Result<Vec<String>, Error> {
        let path = self.file(dir);
        let entries = match fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(io_error(&path, "list", source)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&path, "list", e))?;
            let is_dir = entry
                .file_type()
                .map_err(|e| io_error(&entry.path(), "stat", e))?
                .is_dir();
            if let (true, Some(name)) = (is_dir, entry.file_name().to_str()) {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Writes `bytes` to a new temporary file beside `path`, synced to disk.
    fn write_temp(&self, path: &Path, bytes: &[u8]) -> Result<PathBuf, Error> {
        let parent = parent_of(path)?;
        fs::create_dir_all(parent).map_err(|e| io_error(parent, "create folder", e))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("object");
        let temp = parent.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
        let mut file = File::create_new(&temp).map_err(|e| io_error(&temp, "create", e))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| {
                let _ = fs::remove_file(&temp);
                io_error(&temp, "write", e)
            })?;
        Ok(temp)
    }
}

fn parent_of(path: &Path) -> Result<&Path, Error> {
    path.parent().ok_or_else(|| Error::Folder {
        path: path.display().to_string(),
        operation: "find the folder of",
        source: io::Error::other("the path has no parent folder"),
    })
}

fn sync_parent(path: &Path) -> Result<(), Error> {
    let parent = parent_of(path)?;
    File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| io_error(parent, "sync", e))
}

fn io_error(path: &Path, operation: &'static str, source: io::Error) -> Error {
    Error::Folder {
        path: path.display().to_string(),
        operation,
        source,
    }
}
