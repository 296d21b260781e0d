//! Files transitd writes that something else reads while it runs (a plan file `run` watches,
//! BIRD's include file): replaced whole, never seen half written.

use std::path::{Path, PathBuf};

/// Whether `path` is `-`, which the commands read as standard input (a capture) or standard
/// output (frames written, a plan) rather than a file of that name.
pub fn is_standard_stream(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Writes `contents` to `path` by writing a file beside it and renaming it over `path`: a
/// reader sees the old file or the new one, and a write that fails (a full disk) leaves the
/// old one as it was, where writing in place would have truncated it first. The new file
/// keeps the old one's permissions and is on disk before it is renamed. A symbolic link is
/// followed (its target is replaced, the link stays); a path that is not a regular file
/// (`/dev/stdout` to a terminal, a FIFO) is written in place: renaming over it would replace
/// the device with a file. The directory is made if missing.
pub fn replace(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let path = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => path.canonicalize()?,
        _ => path.to_path_buf(),
    };
    let old = std::fs::metadata(&path).ok();
    if old.as_ref().is_some_and(|m| !m.is_file()) {
        return std::fs::write(&path, contents);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    // Beside it, named for it and this process: two files with one stem, or one already
    // called `.tmp`, never share a temporary file.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(contents)?;
        if let Some(old) = &old {
            file.set_permissions(old.permissions())?;
        }
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replacement that cannot be written leaves the file as it was (in place, it was
    /// truncated first); one that can replaces it whole, leaving nothing beside it.
    #[test]
    fn a_failed_replacement_leaves_the_file_as_it_was() {
        let dir = std::env::temp_dir().join(format!("transitd-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("plan.json");
        replace(&file, b"old").unwrap();
        // A directory where the temporary file would go: the write fails.
        let mut tmp = file.as_os_str().to_owned();
        tmp.push(format!(".{}.tmp", std::process::id()));
        std::fs::create_dir(&tmp).unwrap();
        assert!(replace(&file, b"new").is_err());
        assert_eq!(std::fs::read(&file).unwrap(), b"old");
        std::fs::remove_dir(&tmp).unwrap();
        replace(&file, b"new").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "nothing left beside it");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A link is followed: its target gets the new contents and keeps its permissions, the
    /// link stays a link.
    #[test]
    fn a_link_is_followed_and_permissions_kept() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("transitd-files-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (target, link) = (dir.join("plan-v1.json"), dir.join("plan.json"));
        std::fs::write(&target, b"old").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        replace(&link, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o640);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A device is written, not replaced by a file of the same name.
    #[test]
    fn a_device_is_written_in_place() {
        use std::os::unix::fs::FileTypeExt as _;
        replace(Path::new("/dev/null"), b"x").unwrap();
        assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device());
        assert!(replace(Path::new("/dev/full"), b"x").is_err(), "/dev/full says the disk is full");
        assert!(std::fs::metadata("/dev/full").unwrap().file_type().is_char_device());
    }
}
