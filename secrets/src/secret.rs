//! `Secret<T>`: a value that never prints itself, so a stray `{:?}` cannot leak it into a log.

use std::fmt;

/// What a [`Secret`] prints instead of its value; the same marker the masker writes into logs.
pub const MASK: &str = "[secure]";

/// A decrypted value. `Debug` and `Display` print `[secure]`; the value is reached only through
/// [`Secret::expose`], which makes every use of plaintext easy to find in review.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a plaintext value.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The plaintext. Call it only where the value is handed to the job or written to its files.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the plaintext, for handing it to an API that takes ownership.
    pub fn into_exposed(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Secret(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl<T> fmt::Display for Secret<T> {
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
}
