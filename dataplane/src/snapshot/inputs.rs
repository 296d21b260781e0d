//! The files a configuration names besides itself (list files, the plan): where each is, and
//! the stamp it had just before the build read it, by which `run` watches it for a change.

use toml::Spanned;

use super::Builder;

/// What tells a file's versions apart: its modification time, length and inode.
pub type FileStamp = (std::time::SystemTime, u64, u64);

/// The file at `path`'s [`FileStamp`], if it can be read.
pub fn stamp(path: &std::path::Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
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
}
