//! Human sizes as users type them (`10G`, `512M`, `1.5T`, `4096`): the
//! api crate's parser, with errors naming the field.

use crate::Error;

pub use ferrovirt_api::size::human;

/// Parses a size; a bare number is bytes, `K`/`M`/`G`/`T`/`P` (optionally
/// followed by `iB` or `B`) are powers of 1024.
pub fn parse(field: &str, text: &str) -> Result<u64, Error> {
    ferrovirt_api::size::parse(text).map_err(|why| Error::validation(field, why))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field() {
        assert_eq!(parse("size", "10G").unwrap(), 10 << 30);
        let err = parse("size", "10X").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("size"));
    }
}
