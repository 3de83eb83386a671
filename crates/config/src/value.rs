//! How an effective value is shown by `config` and `/config`: as JSON, in the
//! form the key is written in (`15s`, not a struct of seconds and nanoseconds).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::parse::format_duration;

/// A value a key can hold, shown the way a user writes it.
pub trait ConfigValue {
    /// The value as JSON, unredacted (the reader redacts per the key).
    fn show(&self) -> Value;
}

macro_rules! show_as_json {
    ($($t:ty),*) => {$(
        impl ConfigValue for $t {
            fn show(&self) -> Value {
                Value::from(*self)
            }
        }
    )*};
}
show_as_json!(bool, u8, u16, u32, u64, i32, i64, f64);

impl ConfigValue for usize {
    fn show(&self) -> Value {
        Value::from(u64::try_from(*self).unwrap_or(u64::MAX))
    }
}

impl ConfigValue for String {
    fn show(&self) -> Value {
        Value::String(self.clone())
    }
}

impl ConfigValue for PathBuf {
    fn show(&self) -> Value {
        Value::String(self.to_string_lossy().into_owned())
    }
}

impl ConfigValue for Duration {
    fn show(&self) -> Value {
        Value::String(format_duration(*self))
    }
}

impl ConfigValue for IpAddr {
    fn show(&self) -> Value {
        Value::String(self.to_string())
    }
}

impl ConfigValue for SocketAddr {
    fn show(&self) -> Value {
        Value::String(self.to_string())
    }
}

impl<T: ConfigValue> ConfigValue for Option<T> {
    fn show(&self) -> Value {
        self.as_ref().map_or(Value::Null, ConfigValue::show)
    }
}

impl<T: ConfigValue> ConfigValue for Vec<T> {
    fn show(&self) -> Value {
        Value::Array(self.iter().map(ConfigValue::show).collect())
    }
}

impl<T: ConfigValue> ConfigValue for BTreeMap<String, T> {
    fn show(&self) -> Value {
        Value::Object(self.iter().map(|(k, v)| (k.clone(), v.show())).collect())
    }
}
