//! (De)serialisation: a flat object with integer-millisecond durations, validated on the way in.

use super::ThrottleConfig;

impl serde::Serialize for ThrottleConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ThrottleConfig::serialize(self, serializer)
    }
}

impl<'de> serde::Deserialize<'de> for ThrottleConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let cfg = ThrottleConfig::deserialize(deserializer)?;
        cfg.validate().map_err(serde::de::Error::custom)?;
        Ok(cfg)
    }
}

/// Integer milliseconds for durations in serialised configs.
pub(crate) mod duration_ms {
    use std::time::Duration;

    pub(crate) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        let ms = <u64 as serde::Deserialize>::deserialize(d)?;
        Ok(Duration::from_millis(ms))
    }
}
