//! The shared secret of the live stream, as a file holds it: 64 hexadecimal digits (32
//! bytes); whitespace anywhere (a trailing newline, groups, line breaks) is ignored. One
//! parser for the daemon, `zzping tail` and the viewer.

use std::io::Read;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Length of the shared secret, bytes.
pub const SECRET_LEN: usize = 32;
/// Largest secret file read, bytes: a key with generous whitespace fits; a wrong path
/// (a log, a device) is refused instead of read whole.
pub const MAX_SECRET_FILE_BYTES: u64 = 4096;

/// Why a secret file was refused. Messages never include the file's content.
#[derive(Debug, Error)]
pub enum SecretError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The content is not a secret.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Parses a secret: exactly 64 hexadecimal digits once whitespace is removed.
pub fn parse_secret(text: &str) -> Result<[u8; SECRET_LEN], String> {
    let mut out = [0u8; SECRET_LEN];
    let mut n = 0usize;
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        let Some(v) = c.to_digit(16) else {
            return Err("expected 64 hexadecimal digits, found another character".into());
        };
        if n < 2 * SECRET_LEN {
            out[n / 2] = (out[n / 2] << 4) | v as u8;
        }
        n += 1;
    }
    if n != 2 * SECRET_LEN {
        return Err(format!("expected 64 hexadecimal digits, found {n}"));
    }
    Ok(out)
}

/// Reads and parses the secret file `path` (at most [`MAX_SECRET_FILE_BYTES`]).
pub fn read_secret_file(path: &Path) -> Result<[u8; SECRET_LEN], SecretError> {
    let read_err = |source| SecretError::Read {
        path: path.to_path_buf(),
        source,
    };
    let invalid = |reason: String| SecretError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SECRET_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(invalid(format!(
            "longer than {MAX_SECRET_FILE_BYTES} bytes: not a secret file"
        )));
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| invalid("expected 64 hexadecimal digits, found non-UTF-8 bytes".into()))?;
    parse_secret(text).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn want() -> [u8; SECRET_LEN] {
        std::array::from_fn(|i| i as u8)
    }

    #[test]
    fn hex_digits_with_any_whitespace() {
        assert_eq!(parse_secret(HEX), Ok(want()));
        assert_eq!(
            parse_secret(&format!("  {}\n", HEX.to_uppercase())),
            Ok(want())
        );
        // Groups and line breaks, as a key is sometimes written.
        let grouped: String = HEX
            .as_bytes()
            .chunks(8)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(" \n\t");
        assert_eq!(parse_secret(&grouped), Ok(want()));
        for (bad, says) in [
            (&HEX[..62], "found 62"),
            (&format!("{HEX}0")[..], "found 65"),
            (&HEX.replace('0', "g")[..], "another character"),
            (&"é".repeat(32)[..], "another character"),
            ("", "found 0"),
        ] {
            let e = parse_secret(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn files_are_named_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        std::fs::write(&p, format!("{HEX}\n")).unwrap();
        assert_eq!(read_secret_file(&p).unwrap(), want());
        std::fs::write(&p, "0f".repeat(31)).unwrap();
        let e = read_secret_file(&p).unwrap_err().to_string();
        assert!(
            e.starts_with(&p.display().to_string()) && e.contains("found 62"),
            "{e}"
        );
        assert!(!e.contains("0f0f"), "the content is not echoed: {e}");
        std::fs::write(&p, vec![b' '; MAX_SECRET_FILE_BYTES as usize + 1]).unwrap();
        let e = read_secret_file(&p).unwrap_err().to_string();
        assert!(e.contains("longer than 4096 bytes"), "{e}");
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        assert!(
            read_secret_file(&p)
                .unwrap_err()
                .to_string()
                .contains("non-UTF-8")
        );
        let missing = dir.path().join("missing");
        assert!(matches!(
            read_secret_file(&missing),
            Err(SecretError::Read { .. })
        ));
    }
}
