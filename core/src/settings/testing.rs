//! For the daemons' tests of their settings: a command line with a `--config` file beside
//! it, the check that a bad value is named whether it came as a flag or from the file, and
//! the check that `--help` describes every option.

use super::ConfigError;
use std::path::{Path, PathBuf};

/// `PROGRAM --config FILE [--SETTING PATH]... ARGS...`, with `file` written to FILE in
/// `dir`; each of `defaults` (the TLS files, say) is added unless `args` or `file` sets it.
pub fn command_line(
    program: &str,
    dir: &Path,
    defaults: &[(&str, PathBuf)],
    args: &[&str],
    file: &str,
) -> Vec<String> {
    let path = dir.join(format!("{program}.toml"));
    std::fs::write(&path, file).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut argv = vec![program.to_string(), "--config".into(), path.display().to_string()];
    for (setting, value) in defaults {
        let flag = format!("--{setting}");
        if !args.contains(&flag.as_str()) && !file.contains(&format!("{setting} =")) {
            argv.extend([flag, value.display().to_string()]);
        }
    }
    argv.extend(args.iter().map(|a| a.to_string()));
    argv
}

/// Each case is `(setting, flags, file)`: the flags alone and the file alone (where it is
/// not empty) must each stop the daemon naming `setting`.
pub fn assert_each_named<T: std::fmt::Debug>(
    cases: &[(&str, &[&str], &str)],
    load: impl Fn(&[&str], &str) -> Result<T, ConfigError>,
) {
    for (setting, flags, file) in cases {
        let err = load(flags, "").expect_err(&format!("{flags:?} is refused"));
        assert_eq!(err.setting, *setting, "{flags:?}: {err}");
        if !file.is_empty() {
            let err = load(&[], file).expect_err(&format!("{file:?} is refused"));
            assert_eq!(err.setting, *setting, "{file:?}: {err}");
        }
    }
}

/// Each case is `(file, words)`: the file alone is refused as the file's fault (`config`:
/// an unknown key, a value of the wrong type) with `words` in the message.
pub fn assert_files_fault<T: std::fmt::Debug>(
    cases: &[(&str, &str)],
    load: impl Fn(&[&str], &str) -> Result<T, ConfigError>,
) {
    for (file, words) in cases {
        let err = load(&[], file).expect_err(&format!("{file:?} is refused"));
        assert_eq!(err.setting, "config", "{file:?}: {err}");
        assert!(err.message.contains(words), "{file:?}: {err}");
    }
}

/// `options` are a command's (id, has a description); `help` is its `--help`, which must
/// show each of `defaults` as `[default: ..]`, the values the code uses.
pub fn assert_described<'a>(options: impl Iterator<Item = (&'a str, bool)>, help: &str, defaults: &[&str]) {
    let bare: Vec<&str> = options.filter(|(_, described)| !described).map(|(id, _)| id).collect();
    assert!(bare.is_empty(), "options without a description in --help: {bare:?}");
    for default in defaults {
        assert!(help.contains(&format!("[default: {default}]")), "{default} in {help}");
    }
}
