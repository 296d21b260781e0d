//! The value of an integer key whose range is narrower than a Rust type's, read as any
//! integer so that the check after parsing says the key's own range of every value written.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// An integer as written: any TOML holds up to 2^127 (an i128: toml reads past i64 too).
///
/// Kept in the type its range fits, a value past that type was said by the TOML reader with
/// the type's range: `frame_size = -1` was "integer `-1` is not in 0..=4294967295", which
/// also offers 0 where 256 is the least, while `frame_size = 100` was told 256..=65536. Read
/// as this, both are told 256..=65536, by the one check. Keys whose range is their type's
/// whole range (a tunnel's `key`, a route's `priority`) keep their type: the reader's range
/// is theirs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Integer(pub i128);

impl fmt::Display for Integer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for Integer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Integer, D::Error> {
        deserializer.deserialize_i128(IntegerVisitor)
    }
}

/// Takes every integer toml hands over (i64, then u64, i128 and u128 past it); anything
/// else is "expected an integer", not a Rust type's name.
struct IntegerVisitor;

impl Visitor<'_> for IntegerVisitor {
    type Value = Integer;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Integer, E> {
        Ok(Integer(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Integer, E> {
        Ok(Integer(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Integer, E> {
        Ok(Integer(v))
    }

    /// From 2^127 on (39 digits, past every key's range by far) the value cannot be kept to
    /// be said with a key's range; toml itself refuses 2^128 and more ("integer number
    /// overflowed").
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Integer, E> {
        i128::try_from(v).map(Integer).map_err(|_| E::custom(format!("integer `{v}` is past every key's range")))
    }
}

#[cfg(test)]
mod tests {
    use super::Integer;

    /// What toml hands over for each size of integer is taken whole; what is no integer is
    /// said to be expected one, in words and not as a Rust type.
    #[test]
    fn every_integer_toml_reads_is_taken() {
        #[derive(serde::Deserialize)]
        struct Key {
            k: Integer,
        }
        let read = |value: &str| toml::from_str::<Key>(&format!("k = {value}\n")).map(|key| key.k.0);
        for (text, value) in [
            ("0", 0_i128),
            ("-1", -1),
            ("4294967296", 1 << 32),
            ("9223372036854775807", i128::from(i64::MAX)),
            ("9223372036854775808", 1 << 63),
            ("18446744073709551616", 1 << 64),
            ("-9223372036854775809", i128::from(i64::MIN) - 1),
            ("170141183460469231731687303715884105727", i128::MAX),
            ("0x10", 16),
        ] {
            assert_eq!(read(text).map_err(|e| e.to_string()), Ok(value), "{text}");
        }
        let e = read("\"abc\"").unwrap_err().to_string();
        assert!(e.contains("invalid type: string \"abc\", expected an integer"), "{e}");
        let e = read("1.5").unwrap_err().to_string();
        assert!(e.contains("expected an integer"), "{e}");
        let e = read("170141183460469231731687303715884105728").unwrap_err().to_string();
        assert!(e.contains("integer `170141183460469231731687303715884105728` is past every key's range"), "{e}");
    }
}
