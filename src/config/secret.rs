//! [`Secret`]: a string that never shows itself.

use serde::Deserialize;

/// A secret string that never appears in logs or `Debug` output.
///
/// Deliberately not `PartialEq`: `==` on strings stops at the first
/// difference, which leaks timing. Compare with
/// [`subtle::ConstantTimeEq`] over [`Secret::expose`] where a real
/// comparison is needed.
#[derive(Clone)]
pub struct Secret(String);
impl Secret {
    /// Wraps a secret value.
    pub fn new(s: String) -> Self {
        Self(s)
    }
    /// The secret value; call only where it is sent or compared.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}
