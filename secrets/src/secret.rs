//! `Secret<T>`: a value that never prints itself, so a stray `{:?}` cannot leak it into a log,
//! and that overwrites its memory when dropped, so a freed buffer does not keep it either.

use std::fmt;

use zeroize::Zeroize;

/// What a [`Secret`] prints instead of its value; the same marker the masker writes into logs.
pub const MASK: &str = "[secure]";

/// A decrypted value. `Debug` and `Display` print `[secure]`; the value is reached only through
/// [`Secret::expose`], which makes every use of plaintext easy to find in review. Dropping it
/// zeroes the value's memory.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret<T: Zeroize>(T);

impl<T: Zeroize> Secret<T> {
    /// Wraps a plaintext value.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The plaintext. Call it only where the value is handed to the job or written to its files.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the plaintext, for handing it to an API that takes ownership: from then on the
    /// caller owns the only copy, and nothing zeroes it.
    pub fn into_exposed(mut self) -> T
    where
        T: Default,
    {
        std::mem::take(&mut self.0)
    }
}

impl<T: Zeroize> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<T: Zeroize> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Secret(value)
    }
}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl<T: Zeroize> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_print_the_mask_not_the_value() {
        let s = Secret::new(String::from("hunter22"));
        assert_eq!(format!("{s}"), "[secure]");
        assert_eq!(format!("{s:?}"), "[secure]");
        assert_eq!(format!("{:?}", (1, &s)), "(1, [secure])");
        assert_eq!(s.expose(), "hunter22");
    }

    /// Records whether it was zeroized.
    #[derive(Default)]
    struct Probe(std::sync::Arc<std::sync::atomic::AtomicBool>);

    impl Zeroize for Probe {
        fn zeroize(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn dropping_zeroes_the_value_and_unwrapping_hands_it_over_whole() {
        let probe = Probe::default();
        let zeroed = probe.0.clone();
        drop(Secret::new(probe));
        assert!(zeroed.load(std::sync::atomic::Ordering::SeqCst));
        let handed = Secret::new(vec![1u8, 2, 3]).into_exposed();
        assert_eq!(handed, vec![1, 2, 3]);
    }
}
