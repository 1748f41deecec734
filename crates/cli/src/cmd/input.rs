//! Where a capture comes from: a local file, or an object in a store
//! (`s3://…`, `gs://…`, `az://…`, `file:///…`) read by ranges through
//! `nixcap_objstore`. A local path never touches the object-store code.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use nixcap_capture::{read_capture, Capture, Location, ReadError, ReadErrorKind};
use nixcap_objstore::{is_store_url, ObjectInfo, Store, StoreError};

pub use nixcap_view::summary::ReadSeek;
use nixcap_view::summary::Source;

/// A capture's location, as given on the command line.
#[derive(Debug)]
pub enum Input {
    /// A local file.
    Local(PathBuf),
    /// An object-store URL.
    Remote(String),
}

impl Input {
    /// Tells a URL from a path.
    pub fn parse(arg: &Path) -> Input {
        match arg.to_str() {
            Some(text) if is_store_url(text) => Input::Remote(text.to_owned()),
            _ => Input::Local(arg.to_path_buf()),
        }
    }

    /// The name to show: the path or URL as given.
    pub fn name(&self) -> String {
        match self {
            Input::Local(path) => path.display().to_string(),
            Input::Remote(url) => url.clone(),
        }
    }

    /// Opens the bytes: a buffered file, or a ranged reader of the object.
    pub fn open(&self) -> io::Result<Box<dyn ReadSeek>> {
        match self {
            Input::Local(path) => Ok(Box::new(BufReader::with_capacity(
                1 << 20,
                File::open(path)?,
            ))),
            Input::Remote(url) => {
                let reader = Store::open(url)
                    .and_then(|store| store.reader())
                    .map_err(store_io_error)?;
                Ok(Box::new(reader))
            }
        }
    }

    /// Reads the whole capture, as `nixcap_capture::read_capture_file` does.
    pub fn read_capture(&self) -> Result<Capture, ReadError> {
        let input = self
            .open()
            .map_err(|source| ReadError::new(ReadErrorKind::Io { source }, Location::default()))?;
        read_capture(input)
    }
}

impl Source for Input {
    fn name(&self) -> String {
        Input::name(self)
    }

    fn open(&self) -> io::Result<Box<dyn ReadSeek>> {
        Input::open(self)
    }

    fn read_capture(&self) -> Result<Capture, ReadError> {
        Input::read_capture(self)
    }
}

/// A store error as an I/O error (its message carries no credentials).
pub fn store_io_error(err: StoreError) -> io::Error {
    let kind = if err.is_not_found() {
        io::ErrorKind::NotFound
    } else {
        io::ErrorKind::Other
    };
    io::Error::new(kind, err.to_string())
}

/// The captures (`*.nixcap` objects) under a store prefix, sorted by key.
pub fn list_captures(url: &str) -> Result<Vec<ObjectInfo>, StoreError> {
    let store = Store::open(url)?;
    Ok(store
        .list()?
        .into_iter()
        .filter(|o| o.key.ends_with(".nixcap"))
        .collect())
}

/// Every `*.nixcap` under the local directory `dir` (and its
/// subdirectories), sorted by path.
pub fn local_captures(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    use anyhow::Context;
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?
        {
            let path = entry
                .with_context(|| format!("cannot list {}", dir.display()))?
                .path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "nixcap") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The files of a set, when `input` names one: a local directory, or an
/// object URL ending in `/` (a prefix). `None` for one capture. A local
/// file is told from a directory by its metadata alone.
pub fn set_members(input: &Input) -> anyhow::Result<Option<Vec<Input>>> {
    use anyhow::Context;
    match input {
        Input::Local(path) if path.is_dir() => {
            let files = local_captures(path)?;
            if files.is_empty() {
                anyhow::bail!(
                    "{}: no captures (*.nixcap) in the directory",
                    path.display()
                );
            }
            Ok(Some(files.into_iter().map(Input::Local).collect()))
        }
        Input::Local(_) => Ok(None),
        Input::Remote(url) if url.ends_with('/') => {
            let objects = list_captures(url).context("cannot list the captures")?;
            if objects.is_empty() {
                anyhow::bail!("{url}: no captures (*.nixcap) under this prefix");
            }
            Ok(Some(
                objects.into_iter().map(|o| Input::Remote(o.url)).collect(),
            ))
        }
        Input::Remote(_) => Ok(None),
    }
}
