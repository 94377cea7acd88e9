//! Sharing equal values: many processes have the same executable, command line, cgroup
//! or start second, and keeping one copy of each is most of what keeps k2i small at ten
//! thousand processes.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::Arc;

/// A set of shared values. Values nobody else holds any more are dropped by [`Interner::prune`].
#[derive(Debug)]
pub struct Interner<T: ?Sized + Hash + Eq> {
    set: HashSet<Arc<T>>,
}

impl<T: ?Sized + Hash + Eq> Default for Interner<T> {
    fn default() -> Self {
        Interner { set: HashSet::new() }
    }
}

impl<T: ?Sized + Hash + Eq> Interner<T> {
    /// The shared copy equal to `value`, made with `make` the first time.
    pub fn get_or(&mut self, value: &T, make: impl FnOnce(&T) -> Arc<T>) -> Arc<T> {
        if let Some(a) = self.set.get(value) {
            return a.clone();
        }
        let a = make(value);
        self.set.insert(a.clone());
        a
    }

    /// Forgets values held only here, once the set has grown past `keep` entries.
    pub fn prune(&mut self, keep: usize) {
        if self.set.len() > keep {
            self.set.retain(|a| Arc::strong_count(a) > 1);
        }
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

impl Interner<str> {
    pub fn str(&mut self, s: &str) -> Arc<str> {
        self.get_or(s, |v| Arc::from(v))
    }
}

impl Interner<[Arc<str>]> {
    /// A shared command line, its arguments shared through `strings`.
    pub fn args(&mut self, args: Vec<String>, strings: &mut Interner<str>) -> Arc<[Arc<str>]> {
        let args: Vec<Arc<str>> = args.iter().map(|a| strings.str(a)).collect();
        self.get_or(&args, |v| Arc::from(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_one_allocation_and_unused_ones_are_pruned() {
        let mut strings = Interner::<str>::default();
        let a = strings.str("/usr/bin/sleep");
        let b = strings.str("/usr/bin/sleep");
        assert!(Arc::ptr_eq(&a, &b));
        let mut lines = Interner::<[Arc<str>]>::default();
        let x = lines.args(vec!["sleep".into(), "10".into()], &mut strings);
        let y = lines.args(vec!["sleep".into(), "10".into()], &mut strings);
        assert!(Arc::ptr_eq(&x, &y));
        drop((x, y));
        lines.prune(0);
        assert!(lines.is_empty());
        strings.prune(0);
        assert_eq!(strings.len(), 1, "a and b still hold /usr/bin/sleep");
    }
}
