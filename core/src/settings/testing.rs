//! For the daemons' tests of their settings: a command line with a `--config` file beside
//! it, and the check that a bad value is named whether it came as a flag or from the file.

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
