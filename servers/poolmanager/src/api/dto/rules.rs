//! Field types that carry [`poolcore::limits`] into the spec and enforce them when a
//! request is parsed, so that the spec says exactly what the server accepts.
//!
//! [`Text`] is a string bounded by one of the limits' `PATTERN`s, [`Bounded`] an
//! integer in a range and [`Map`] a named string map (labels, metadata, environment,
//! ports, log options). The same checks run again in `poolcore`; these make a request
//! that breaks a rule fail where the spec says it does, with the rule in the message.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::OnceLock;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type};
use poolcore::limits::{self, quoted};
use regex::Regex;
use serde_json::Value;

/// A rule for one kind of string: its longest length and the ECMA-262 pattern it
/// matches (which the `regex` crate reads the same way).
pub trait TextRule: Send + Sync + 'static {
    /// The kind of string, in messages.
    const WHAT: &'static str;
    /// Longest length, in characters.
    const MAX: usize;
    /// The pattern, anchored.
    const PATTERN: &'static str;
    /// The compiled pattern.
    fn regex() -> &'static Regex;

    /// Whether `text` follows the rule.
    fn accepts(text: &str) -> bool {
        text.chars().count() <= Self::MAX && Self::regex().is_match(text)
    }

    /// Checks `text` against the rule.
    fn check(text: &str) -> Result<(), String> {
        if Self::accepts(text) {
            return Ok(());
        }
        Err(format!(
            "{} is not a {}: it must match {}",
            quoted(text),
            Self::WHAT,
            Self::PATTERN
        ))
    }
}

macro_rules! text_rules {
    ($($(#[$doc:meta])* $rule:ident($what:literal, $max:expr, $pattern:expr);)+) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $rule {}

        impl TextRule for $rule {
            const WHAT: &'static str = $what;
            const MAX: usize = $max;
            const PATTERN: &'static str = $pattern;
            fn regex() -> &'static Regex {
                static RE: OnceLock<Regex> = OnceLock::new();
                RE.get_or_init(|| compile($pattern))
            }
        }
    )+};
}

/// `pattern`, compiled with its long repetitions (`{0,4096}`) left open (`{0,}`): the
/// length is checked apart ([`TextRule::MAX`]), and a bounded repetition of a Unicode
/// class thousands long would not fit the regex size limit.
fn compile(pattern: &str) -> Regex {
    static BOUNDS: OnceLock<Regex> = OnceLock::new();
    let bounds = BOUNDS.get_or_init(|| Regex::new(r"\{(\d+),(\d+)\}").expect("a fixed pattern"));
    let open = bounds.replace_all(pattern, |c: &regex::Captures<'_>| {
        let max: usize = c[2].parse().unwrap_or(0);
        if max > 255 {
            format!("{{{},}}", &c[1])
        } else {
            c[0].to_owned()
        }
    });
    Regex::new(&open).expect("the limits' patterns compile (tested)")
}

/// Ports `1`-`65535`, as `PoolCore` reads them (`80`, `80/tcp`, `53/udp`).
pub const PORT_PATTERN: &str = limits::PORT_PATTERN;
/// `NODE.PORT`: a node name, a dot, and the name of one of its ports.
pub const PORT_REF_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}\\.[A-Za-z0-9][A-Za-z0-9_-]{0,62}$";
/// A shell command that is not blank, without NUL.
pub const COMMAND_PATTERN: &str = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$";
/// A PEM document given inline (`-----BEGIN ...`), or the path of a file holding one on
/// the server's machine (at most 4096 characters), without NUL.
pub const PEM_PATTERN: &str = "^(-----BEGIN [^\\u0000]{0,65525}|[^\\u0000]{1,4096})$";

text_rules! {
    /// Host, blueprint, cluster, node and port names.
    NameRule("name", limits::NAME_MAX, limits::NAME_PATTERN);
    /// User ids.
    UserIdRule("user id", limits::USER_ID_MAX, limits::USER_ID_PATTERN);
    /// Image references.
    ImageRule("image reference", limits::IMAGE_MAX, limits::IMAGE_PATTERN);
    /// Engine endpoints.
    EndpointRule("engine endpoint", limits::ENDPOINT_MAX, limits::ENDPOINT_PATTERN);
    /// Public addresses.
    AddressRule("host name or IP address", limits::ADDRESS_MAX, limits::ADDRESS_PATTERN);
    /// Command arguments and environment values.
    ArgRule("command argument or value", limits::ARG_MAX, limits::ARG_PATTERN);
    /// Health-check commands.
    CommandRule("command", limits::ARG_MAX, COMMAND_PATTERN);
    /// Times of day, UTC.
    TimeOfDayRule("time of day HH:MM", 5, limits::TIME_OF_DAY_PATTERN);
    /// Paths an HTTP readiness probe asks for.
    ProbePathRule("path", limits::PROBE_PATH_MAX, limits::PROBE_PATH_PATTERN);
    /// `NODE.PORT` references.
    PortRefRule("NODE.PORT reference", 2 * limits::NAME_MAX + 1, PORT_REF_PATTERN);
    /// Ports.
    PortRule("port", 16, PORT_PATTERN);
    /// Label, metadata and log option keys.
    KeyRule("key", limits::NAME_MAX, limits::KEY_PATTERN);
    /// Environment variable names.
    EnvKeyRule("variable name", 255, limits::ENV_KEY_PATTERN);
    /// Label values.
    LabelValueRule("label value", limits::LABEL_VALUE_MAX, limits::LABEL_VALUE_PATTERN);
    /// Metadata and log option values.
    TextValueRule("text value", limits::TEXT_VALUE_MAX, limits::TEXT_VALUE_PATTERN);
}

/// Inline PEM documents, or paths to them (at most 4096 characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemRule {}

impl TextRule for PemRule {
    const WHAT: &'static str = "PEM document or path";
    const MAX: usize = limits::PEM_MAX;
    const PATTERN: &'static str = PEM_PATTERN;
    fn regex() -> &'static Regex {
        static RE: OnceLock<Regex> = OnceLock::new();
        RE.get_or_init(|| compile(PEM_PATTERN))
    }

    fn accepts(text: &str) -> bool {
        // The open regex no longer bounds the path alternative: bound it here.
        let path_ok = text.starts_with("-----BEGIN ") || text.chars().count() <= 4096;
        path_ok && text.chars().count() <= Self::MAX && Self::regex().is_match(text)
    }
}

/// The parts of `Type` every type here shares: required, one value, itself.
macro_rules! one_value {
    () => {
        const IS_REQUIRED: bool = true;
        type RawValueType = Self;
        type RawElementValueType = Self;

        fn as_raw_value(&self) -> Option<&Self> {
            Some(self)
        }

        fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
            Box::new(std::iter::once(self))
        }
    };
}

/// A string that follows the rule `R`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<R>(String, PhantomData<R>);

/// A host, blueprint, cluster, node or port name.
pub type Name = Text<NameRule>;
/// A user id.
pub type UserId = Text<UserIdRule>;

impl<R: TextRule> Text<R> {
    /// The string.
    pub fn into_inner(self) -> String {
        self.0
    }

    /// The string, borrowed.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `text` as a `Text<R>`; for strings that come from the pool, which keeps the rules.
    pub fn from_pool(text: String) -> Self {
        Text(text, PhantomData)
    }

    fn schema() -> MetaSchema {
        MetaSchema {
            max_length: Some(R::MAX),
            pattern: Some(R::PATTERN.to_owned()),
            ..MetaSchema::new("string")
        }
    }
}

impl<R: TextRule> Type for Text<R> {
    fn name() -> Cow<'static, str> {
        R::WHAT.into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(Self::schema()))
    }

    one_value!();
}

impl<R: TextRule> ParseFromJSON for Text<R> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(text)) => Self::parse_from_parameter(&text),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl<R: TextRule> ParseFromParameter for Text<R> {
    fn parse_from_parameter(text: &str) -> ParseResult<Self> {
        R::check(text).map_err(ParseError::custom)?;
        Ok(Text(text.to_owned(), PhantomData))
    }
}

impl<R: TextRule> ToJSON for Text<R> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// An integer from `MIN` to `MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounded<const MIN: u64, const MAX: u64>(u64);

impl<const MIN: u64, const MAX: u64> Bounded<MIN, MAX> {
    /// `n`, which the caller knows is in range.
    pub const fn new(n: u64) -> Self {
        assert!(MIN <= n && n <= MAX);
        Bounded(n)
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The number as a `u32`; `MAX` fits in one where this is used.
    pub fn get_u32(self) -> u32 {
        u32::try_from(self.0).unwrap_or(u32::MAX)
    }
}

impl<const MIN: u64, const MAX: u64> Type for Bounded<MIN, MAX> {
    fn name() -> Cow<'static, str> {
        format!("integer from {MIN} to {MAX}").into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            minimum: Some(MIN as f64),
            maximum: Some(MAX as f64),
            ..MetaSchema::new_with_format("integer", "int64")
        }))
    }

    one_value!();
}

impl<const MIN: u64, const MAX: u64> Bounded<MIN, MAX> {
    fn checked(n: Option<u64>, shown: impl std::fmt::Display) -> ParseResult<Self> {
        match n {
            Some(n) if (MIN..=MAX).contains(&n) => Ok(Bounded(n)),
            _ => Err(ParseError::custom(format!(
                "{shown} is not a whole number from {MIN} to {MAX}"
            ))),
        }
    }
}

impl<const MIN: u64, const MAX: u64> ParseFromJSON for Bounded<MIN, MAX> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::Number(n)) => Self::checked(n.as_u64(), quoted(&n.to_string())),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl<const MIN: u64, const MAX: u64> ParseFromParameter for Bounded<MIN, MAX> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Self::checked(value.parse().ok(), quoted(value))
    }
}

impl<const MIN: u64, const MAX: u64> ToJSON for Bounded<MIN, MAX> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::from(self.0))
    }
}

/// A rule for a named string map: its schema name and description, how many entries
/// it may hold, and the rules of its keys and values.
pub trait MapRule: Send + Sync + 'static {
    /// Schema name.
    const NAME: &'static str;
    /// Schema description.
    const DESCRIPTION: &'static str;
    /// Most entries.
    const MAX_ENTRIES: usize;
    /// Rule of the keys (stated in the description: OpenAPI 3.0 has no `propertyNames`).
    type Key: TextRule;
    /// Rule of the values.
    type Value: TextRule;
}

macro_rules! map_rules {
    ($($(#[$doc:meta])* $rule:ident($name:literal, $max:expr, $key:ty, $value:ty, $description:expr);)+) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $rule {}

        impl MapRule for $rule {
            const NAME: &'static str = $name;
            const DESCRIPTION: &'static str = $description;
            const MAX_ENTRIES: usize = $max;
            type Key = $key;
            type Value = $value;
        }
    )+};
}

map_rules! {
    /// Labels of hosts and blueprints, and an apply's label filter.
    LabelsRule("Labels", limits::LABELS_MAX, KeyRule, LabelValueRule,
        "Labels: at most 32. Keys are 1-63 letters, digits, `.`, `_`, `/` and `-`, starting \
         with a letter or digit (`^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$`); values are up to 253 \
         printable ASCII characters.");
    /// Metadata of an apply, kept with the cluster and the lease.
    MetadataRule("Metadata", limits::METADATA_MAX, KeyRule, TextValueRule,
        "Free metadata: at most 32 entries. Keys as label keys \
         (`^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$`); values are up to 1024 characters without \
         control characters.");
    /// Options of a logging driver.
    LogOptionsRule("LogOptions", limits::LOG_OPTIONS_MAX, KeyRule, TextValueRule,
        "Logging driver options, e.g. `{\"syslog-address\": \"udp://10.0.0.5:514\"}`: at most \
         16. Keys as label keys (`^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$`); values are up to 1024 \
         characters without control characters.");
    /// Environment of a node.
    EnvRule("Env", limits::ENV_MAX, EnvKeyRule, ArgRule,
        "Environment variables of a node: at most 64. Names match \
         `^[A-Za-z_][A-Za-z0-9_.]{0,254}$`; values are up to 4096 characters without NUL.");
    /// Named ports of a node.
    PortsRule("Ports", limits::PORTS_MAX, NameRule, PortRule,
        "Named ports of a node, e.g. `{\"rest\": \"7050/tcp\"}`: at most 16. Names are node \
         names (`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`); each port is `PORT`, `PORT/tcp` or \
         `PORT/udp`, PORT from 1 to 65535. Each is published on a free port of the host.");
}

/// A string map following the rule `R`, as a named schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Map<R>(BTreeMap<String, String>, PhantomData<R>);

/// Labels.
pub type Labels = Map<LabelsRule>;
/// Apply metadata.
pub type Metadata = Map<MetadataRule>;

impl<R: MapRule> Map<R> {
    /// The map.
    pub fn into_inner(self) -> BTreeMap<String, String> {
        self.0
    }

    /// A map from the pool, which keeps the rules.
    pub fn from_pool(map: BTreeMap<String, String>) -> Self {
        Map(map, PhantomData)
    }

    fn parse(obj: serde_json::Map<String, Value>) -> Result<Self, String> {
        if obj.len() > R::MAX_ENTRIES {
            return Err(format!("{} entries is more than {}", obj.len(), R::MAX_ENTRIES));
        }
        let mut map = BTreeMap::new();
        for (key, value) in obj {
            R::Key::check(&key)?;
            match value {
                Value::String(value) => {
                    R::Value::check(&value).map_err(|e| format!("the value of {}: {e}", quoted(&key)))?;
                    map.insert(key, value);
                }
                _ => return Err(format!("the value of {} is not a string", quoted(&key))),
            }
        }
        Ok(Map(map, PhantomData))
    }
}

impl<R> Default for Map<R> {
    fn default() -> Self {
        Map(BTreeMap::new(), PhantomData)
    }
}

impl<R: MapRule> Type for Map<R> {
    fn name() -> Cow<'static, str> {
        R::NAME.into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference(R::NAME.to_owned())
    }

    fn register(registry: &mut Registry) {
        registry.create_schema::<Self, _>(R::NAME.to_owned(), |_| MetaSchema {
            description: Some(R::DESCRIPTION),
            additional_properties: Some(Box::new(Text::<R::Value>::schema_ref())),
            max_properties: Some(R::MAX_ENTRIES),
            ..MetaSchema::new("object")
        });
    }

    one_value!();

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<R: MapRule> ParseFromJSON for Map<R> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::Object(obj)) => Self::parse(obj).map_err(ParseError::custom),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl<R: MapRule> ToJSON for Map<R> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiles<R: TextRule>() {
        assert!(R::regex().is_match("") || !R::regex().is_match(""));
    }

    #[test]
    fn every_pattern_compiles() {
        compiles::<NameRule>();
        compiles::<UserIdRule>();
        compiles::<ImageRule>();
        compiles::<EndpointRule>();
        compiles::<AddressRule>();
        compiles::<ArgRule>();
        compiles::<CommandRule>();
        compiles::<PortRefRule>();
        compiles::<PemRule>();
        compiles::<PortRule>();
        compiles::<KeyRule>();
        compiles::<EnvKeyRule>();
        compiles::<LabelValueRule>();
        compiles::<TextValueRule>();
    }

    #[test]
    fn text_follows_the_pool_rules() {
        for (port, ok) in [
            ("80", true),
            ("80/tcp", true),
            ("53/udp", true),
            ("65535", true),
            ("0", false),
            ("65536", false),
            ("80/sctp", false),
        ] {
            assert_eq!(PortRule::check(port).is_ok(), ok, "{port}");
            assert_eq!(port.parse::<poolcore::PortSpec>().is_ok(), ok, "{port}");
        }
        assert!(NameRule::check("vp0").is_ok());
        assert!(NameRule::check("a b").is_err());
        assert!(CommandRule::check("nc -z 127.0.0.1 80").is_ok());
        assert!(CommandRule::check("  ").is_err());
        let err = NameRule::check(&"x".repeat(100_000)).unwrap_err();
        assert!(
            err.len() < 300,
            "a refusal does not echo the input: {} bytes",
            err.len()
        );
        assert!(
            PemRule::check(&"p".repeat(4097)).is_err(),
            "paths are at most 4096"
        );
        assert!(PemRule::check(&format!("-----BEGIN {}", "p".repeat(5000))).is_ok());
        assert!(ArgRule::check(&"a".repeat(4097)).is_err());
        let c1 = "a\u{0085}b";
        assert!(
            TextValueRule::check(c1).is_err(),
            "C1 controls are refused, as the pool does"
        );
    }

    #[test]
    fn bounded_numbers() {
        assert_eq!(
            Bounded::<1, 10>::parse_from_parameter("10")
                .map(Bounded::get)
                .ok(),
            Some(10)
        );
        assert!(Bounded::<1, 10>::parse_from_parameter("0").is_err());
        assert!(Bounded::<1, 10>::parse_from_json(Some(Value::from(-1))).is_err());
        assert!(Bounded::<1, 10>::parse_from_json(Some(Value::from(1.5))).is_err());
    }
}
