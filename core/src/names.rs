//! Names more than one component must judge the same way: a workload's name is checked by
//! the CLI before it asks and by middlecon when it is asked.

/// The longest workload name.
pub const WORKLOAD_NAME_MAX: usize = 63;

/// Checks a workload name: `[A-Za-z0-9][A-Za-z0-9_.-]{0,62}`. The error is for a person.
pub fn check_workload_name(name: &str) -> Result<(), String> {
    let Some(first) = name.chars().next() else {
        return Err("a workload name may not be empty".into());
    };
    if name.len() > WORKLOAD_NAME_MAX {
        return Err(format!("{name:?} is longer than {WORKLOAD_NAME_MAX} characters"));
    }
    if !first.is_ascii_alphanumeric() {
        return Err(format!("{name:?} must start with a letter or digit"));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || "_.-".contains(*c))) {
        return Err(format!("{name:?} has {bad:?}: use letters, digits, '_', '.' and '-'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_names() {
        for ok in ["a", "web-1", "A.b_c-9", "0", &"x".repeat(63)] {
            assert!(check_workload_name(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("-web", "start"),
            (".x", "start"),
            ("we b", "' '"),
            ("a/b", "'/'"),
            ("wéb", "'é'"),
            (&"x".repeat(64), "longer than 63"),
        ] {
            let e = check_workload_name(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
