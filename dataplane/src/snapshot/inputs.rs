//! The files a configuration names besides itself (list files, the plan): where each is, and
//! the stamp it had just before the build read it, by which `run` watches it for a change.

use toml::Spanned;

use super::Builder;

/// What tells a file's versions apart: its modification time, length and inode, and its
/// inode's change time (seconds, nanoseconds). The modification time is the writer's to set
/// (`touch -d`, `cp -p`, `curl -R`, `rsync -t`): a list rewritten in place to the same length
/// and given its old time back kept its stamp, and neither the watch nor, since a reload of
/// what runs applies nothing, SIGHUP read it again. The change time no writer sets.
pub type FileStamp = (std::time::SystemTime, u64, u64, (i64, i64));

/// The file at `path`'s [`FileStamp`], if it can be read.
pub fn stamp(path: &std::path::Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino(), (m.ctime(), m.ctime_nsec())))
}

impl Builder<'_> {
    /// The path of a file the configuration names (`what`): relative to the configuration
    /// file's directory; from etcd, where there is no such directory, it must be absolute.
    pub(crate) fn file_path(&mut self, file: &Spanned<String>, what: &str) -> Option<std::path::PathBuf> {
        let path = std::path::Path::new(file.get_ref());
        if file.get_ref().is_empty() {
            self.err(&file.span(), format!("{what} is empty: name a file"));
            return None;
        }
        if self.src.name().starts_with("etcd:") && !path.is_absolute() {
            let why = format!(
                "{what} `{}` is a relative path, and a configuration from etcd has no directory: write it absolute",
                crate::limits::excerpt(file.get_ref(), 80)
            );
            self.err(&file.span(), why);
            return None;
        }
        let path = std::path::Path::new(self.src.name()).parent().unwrap_or(std::path::Path::new("")).join(path);
        // Stamped before its caller reads it: a write after the read is then a change.
        self.input_stamps.push(stamp(&path));
        self.inputs.push(path.clone());
        Some(path)
    }
}

#[cfg(test)]
mod tests {
    /// Each file the configuration names has the stamp its build took before reading it,
    /// in step with `inputs` (`run` watches them by position), a file named twice included.
    #[test]
    fn every_input_has_its_stamp() {
        let dir = std::env::temp_dir().join(format!("transitd-input-stamps-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("feed.txt"), "192.0.2.1\n").unwrap();
        let config = dir.join("t.toml");
        std::fs::write(
            &config,
            "[server]\nanycast = \"192.0.2.1\"\n[[list]]\nname = \"a\"\nfile = \"feed.txt\"\n\
             [[list]]\nname = \"b\"\nfile = \"feed.txt\"\n",
        )
        .unwrap();
        let snap = crate::snapshot::Snapshot::from_path(&config).unwrap();
        assert_eq!(snap.inputs, [dir.join("feed.txt"), dir.join("feed.txt")]);
        let stamp = super::stamp(&dir.join("feed.txt"));
        assert!(stamp.is_some());
        assert_eq!(snap.input_stamps, [stamp, stamp]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A file rewritten in place with other bytes of the same length, its modification time
    /// set back to what it was (`touch -d`, `cp -p`, `curl -R` onto it), is another version:
    /// its stamp differs. With the modification time, length and inode alone it did not, and
    /// a reload of what runs took the list for the one it read.
    #[test]
    fn a_rewrite_given_its_old_time_back_is_another_version() {
        let dir = std::env::temp_dir().join(format!("transitd-stamp-time-back-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let list = dir.join("feed.txt");
        std::fs::write(&list, "192.0.2.1\n").unwrap();
        let before = super::stamp(&list).unwrap();
        let written_at = std::fs::metadata(&list).unwrap().modified().unwrap();
        // Past a coarse clock's tick (a jiffy), so that the change time can move.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&list, "192.0.2.2\n").unwrap();
        std::fs::File::options().write(true).open(&list).unwrap().set_modified(written_at).unwrap();
        let after = super::stamp(&list).unwrap();
        assert_eq!((after.0, after.1, after.2), (before.0, before.1, before.2), "same time, length and inode");
        assert_ne!(after, before, "another version all the same");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
