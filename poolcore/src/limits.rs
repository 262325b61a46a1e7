//! The limits on everything the pool stores, and the checks that enforce them.
//!
//! Every string that enters the pool is bounded in length and character set, and every
//! number in range, so that a bad or hostile request is refused with
//! [`Error::Invalid`] naming the field before anything is written. The constants are
//! public so that a server can state the same rules in its API description (the
//! `PATTERN`s are ECMA-262 regular expressions, as JSON Schema uses, and say exactly
//! what the checks here accept).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::{Error, Result};

/// Longest name of a host, blueprint, cluster, node or port.
pub const NAME_MAX: usize = 63;
/// Names: letters, digits, `-`, `_` and `.`, starting with a letter or digit. Such
/// names are safe in container, network and service names.
pub const NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$";

/// Longest user id.
pub const USER_ID_MAX: usize = 256;
/// User ids: printable ASCII without spaces.
pub const USER_ID_PATTERN: &str = "^[!-~]{1,256}$";

/// Most labels on a host or blueprint, or in an apply's filter.
pub const LABELS_MAX: usize = 32;
/// Label keys (also metadata and log option keys): up to 63 letters, digits, `.`, `_`,
/// `/` and `-`, starting with a letter or digit.
pub const KEY_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$";
/// Longest label value.
pub const LABEL_VALUE_MAX: usize = 253;
/// Label values: printable ASCII, spaces included.
pub const LABEL_VALUE_PATTERN: &str = "^[ -~]{0,253}$";

/// Most metadata entries an apply may store.
pub const METADATA_MAX: usize = 32;
/// Longest metadata value (and log option value), in characters.
pub const TEXT_VALUE_MAX: usize = 1024;
/// Metadata and log option values: any text without control characters (C0, DEL and
/// C1, as [`char::is_control`]).
pub const TEXT_VALUE_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]{0,1024}$";

/// Most nodes in a blueprint.
pub const NODES_MAX: usize = 64;
/// Longest image reference.
pub const IMAGE_MAX: usize = 255;
/// Image references: `name[:tag][@digest]` with a registry and path, as Docker spells
/// them.
pub const IMAGE_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$";
/// Most command arguments of a node.
pub const COMMAND_MAX: usize = 64;
/// Longest command argument, environment value or health-check command.
pub const ARG_MAX: usize = 4096;
/// Command arguments and environment values: any text without NUL.
pub const ARG_PATTERN: &str = "^[^\\u0000]{0,4096}$";
/// Most environment variables of a node.
pub const ENV_MAX: usize = 64;
/// Environment variable names.
pub const ENV_KEY_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_.]{0,254}$";
/// Most named ports of a node.
pub const PORTS_MAX: usize = 16;
/// Ports: `80`, `80/tcp` or `53/udp`, the number from 1 to 65535 (leading zeros
/// allowed, as [`PortSpec`](crate::PortSpec) reads it).
pub const PORT_PATTERN: &str =
    "^0*([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])(/(tcp|udp))?$";
/// Longest interval between health checks, in seconds.
pub const HEALTH_INTERVAL_MAX: u32 = 3600;
/// Most failed health checks in a row before a node is unhealthy.
pub const HEALTH_RETRIES_MAX: u32 = 100;

/// Longest a readiness probe's period, timeout or start may be, in seconds.
pub const PROBE_SECONDS_MAX: u32 = 3600;
/// Most failed probes in a row before a made cluster is unhealthy.
pub const PROBE_FAILURES_MAX: u32 = 100;
/// Longest path an HTTP probe may ask for.
pub const PROBE_PATH_MAX: usize = 1024;
/// HTTP probe paths: `/` then printable ASCII without spaces.
pub const PROBE_PATH_PATTERN: &str = "^/[!-~]{0,1023}$";

/// Longest engine endpoint.
pub const ENDPOINT_MAX: usize = 512;
/// Engine endpoints: `unix:///path`, `tcp://host:port`, `http://`, `https://` or
/// `sim://name`, in printable ASCII.
pub const ENDPOINT_PATTERN: &str = "^(unix|tcp|http|https|sim)://[!-~]{1,500}$";
/// Longest public address.
pub const ADDRESS_MAX: usize = 253;
/// Public addresses: a host name, an IPv4 address or an IPv6 address without brackets.
pub const ADDRESS_PATTERN: &str = "^[A-Za-z0-9.:-]{1,253}$";
/// Most logging driver options.
pub const LOG_OPTIONS_MAX: usize = 16;
/// Largest capacity a host may be given.
pub const CAPACITY_MAX: u32 = 10_000;
/// Most free clusters a blueprint may keep ready (`min_ready`), and most it may have
/// (`max_total`, `max_applied`).
pub const BUFFER_MAX: u32 = 1_000_000;
/// Times of day: `HH:MM`, 00:00 to 23:59.
pub const TIME_OF_DAY_PATTERN: &str = "^([01][0-9]|2[0-3]):[0-5][0-9]$";
/// Most buffer time windows of a blueprint.
pub const BUFFER_WINDOWS_MAX: usize = 16;
/// Highest `min_ready_percent`: ten free clusters for each applied one.
pub const READY_PERCENT_MAX: u32 = 1000;
/// Most free clusters of earlier versions a rollout replaces in a minute.
pub const ROLLOUT_PER_MINUTE_MAX: u32 = 100_000;
/// Longest PEM document given inline for a host's TLS.
pub const PEM_MAX: usize = 65_536;

/// Longest lease an apply may ask for, whatever the pool's own maximum: ten years.
pub const TTL_MAX_SECONDS: u64 = 10 * 365 * 24 * 3600;
/// Longest wait an apply may ask for, in seconds (the pool's own maximum may be lower).
pub const APPLY_WAIT_MAX_SECONDS: u64 = 3600;
/// Most items one page of a listing may hold.
pub const PAGE_MAX: u64 = 1000;
/// Items on a page when the caller gives no limit.
pub const PAGE_DEFAULT: u64 = 100;

/// Checks a host, blueprint, cluster, node or port name against [`NAME_PATTERN`].
pub fn check_name(field: &'static str, name: &str) -> Result<()> {
    let ok = name.len() <= NAME_MAX
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        return Ok(());
    }
    Err(Error::invalid(
        field,
        format!(
            "{} must be 1-{NAME_MAX} letters, digits, '-', '_' or '.', starting with a letter or digit",
            quoted(name)
        ),
    ))
}

/// Checks a user id against [`USER_ID_PATTERN`].
pub fn check_user_id(field: &'static str, user_id: &str) -> Result<()> {
    let ok =
        !user_id.is_empty() && user_id.len() <= USER_ID_MAX && user_id.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        return Ok(());
    }
    Err(Error::invalid(
        field,
        format!(
            "{} must be 1-{USER_ID_MAX} printable ASCII characters without spaces",
            quoted(user_id)
        ),
    ))
}

/// Checks a label set: at most [`LABELS_MAX`] entries, keys per [`KEY_PATTERN`],
/// values per [`LABEL_VALUE_PATTERN`].
pub fn check_labels(field: &'static str, labels: &BTreeMap<String, String>) -> Result<()> {
    check_count(field, labels.len(), LABELS_MAX)?;
    for (key, value) in labels {
        check_key(field, key)?;
        let ok = value.len() <= LABEL_VALUE_MAX && value.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
        if !ok {
            return Err(Error::invalid(
                field,
                format!("the value of {key:?} must be at most {LABEL_VALUE_MAX} printable ASCII characters"),
            ));
        }
    }
    Ok(())
}

/// Checks free text stored as given (apply metadata, log options): at most `max`
/// entries, keys per [`KEY_PATTERN`], values per [`TEXT_VALUE_PATTERN`].
pub fn check_text_map(field: &'static str, map: &BTreeMap<String, String>, max: usize) -> Result<()> {
    check_count(field, map.len(), max)?;
    for (key, value) in map {
        check_key(field, key)?;
        check_text(field, key, value, TEXT_VALUE_MAX, char::is_control)?;
    }
    Ok(())
}

/// Checks an image reference against [`IMAGE_PATTERN`].
pub fn check_image(field: &'static str, image: &str) -> Result<()> {
    let ok = image.len() <= IMAGE_MAX
        && image.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && image
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | ':' | '@' | '-'));
    if ok {
        return Ok(());
    }
    Err(Error::invalid(
        field,
        format!(
            "{} is not an image reference (up to {IMAGE_MAX} of A-Z a-z 0-9 . _ / : @ -)",
            quoted(image)
        ),
    ))
}

/// Checks a command line: at most [`COMMAND_MAX`] arguments of at most [`ARG_MAX`]
/// characters, without NUL.
pub fn check_command(field: &'static str, args: &[String]) -> Result<()> {
    check_count(field, args.len(), COMMAND_MAX)?;
    for (i, arg) in args.iter().enumerate() {
        check_text(field, &format!("argument {i}"), arg, ARG_MAX, |c| c == '\0')?;
    }
    Ok(())
}

/// Checks an environment: at most [`ENV_MAX`] variables, names per
/// [`ENV_KEY_PATTERN`], values per [`ARG_PATTERN`].
pub fn check_env(field: &'static str, env: &BTreeMap<String, String>) -> Result<()> {
    check_count(field, env.len(), ENV_MAX)?;
    for (key, value) in env {
        let ok = key.len() <= 255
            && key
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'));
        if !ok {
            return Err(Error::invalid(
                field,
                format!("{} is not a variable name", quoted(key)),
            ));
        }
        check_text(field, key, value, ARG_MAX, |c| c == '\0')?;
    }
    Ok(())
}

/// Checks an engine endpoint's length and characters (its form is the connector's
/// business).
pub fn check_endpoint(field: &'static str, endpoint: &str) -> Result<()> {
    let scheme_ok = ["unix://", "tcp://", "http://", "https://", "sim://"]
        .iter()
        .any(|scheme| endpoint.starts_with(scheme));
    let ok = scheme_ok && endpoint.len() <= ENDPOINT_MAX && endpoint.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        return Ok(());
    }
    Err(Error::invalid(
        field,
        format!(
            "{} is not unix:///PATH, tcp://HOST:PORT, http://, https:// or sim://NAME \
             (at most {ENDPOINT_MAX} printable characters)",
            quoted(endpoint)
        ),
    ))
}

/// Checks a public address against [`ADDRESS_PATTERN`].
pub fn check_address(field: &'static str, address: &str) -> Result<()> {
    let ok = !address.is_empty()
        && address.len() <= ADDRESS_MAX
        && address
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-'));
    if ok {
        return Ok(());
    }
    Err(Error::invalid(
        field,
        format!("{} is not a host name or IP address", quoted(address)),
    ))
}

/// Checks a lease length: above zero and at most [`TTL_MAX_SECONDS`].
pub fn check_ttl(field: &'static str, ttl: Duration) -> Result<()> {
    if ttl.is_zero() || ttl.as_secs() > TTL_MAX_SECONDS {
        return Err(Error::invalid(
            field,
            format!("{} is not between 1 and {TTL_MAX_SECONDS} seconds", ttl.as_secs()),
        ));
    }
    Ok(())
}

/// Checks a number against an inclusive range.
pub fn check_range(field: &'static str, value: u64, min: u64, max: u64) -> Result<()> {
    if (min..=max).contains(&value) {
        return Ok(());
    }
    Err(Error::invalid(
        field,
        format!("{value} is not between {min} and {max}"),
    ))
}

fn check_count(field: &'static str, count: usize, max: usize) -> Result<()> {
    if count > max {
        return Err(Error::invalid(
            field,
            format!("{count} entries is more than {max}"),
        ));
    }
    Ok(())
}

fn check_key(field: &'static str, key: &str) -> Result<()> {
    let ok = key.len() <= NAME_MAX
        && key.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'));
    if ok {
        return Ok(());
    }
    Err(Error::invalid(
        field,
        format!(
            "key {} must be 1-{NAME_MAX} letters, digits, '.', '_', '/' or '-', starting with a letter or digit",
            quoted(key)
        ),
    ))
}

fn check_text(field: &'static str, what: &str, value: &str, max: usize, bad: fn(char) -> bool) -> Result<()> {
    let chars = value.chars().count();
    if chars > max {
        return Err(Error::invalid(
            field,
            format!(
                "{} is {chars} characters long; at most {max} are allowed",
                quoted(what)
            ),
        ));
    }
    if value.chars().any(bad) {
        return Err(Error::invalid(
            field,
            format!("{} holds a control character", quoted(what)),
        ));
    }
    Ok(())
}

/// `value` in quotes for an error message, cut to 64 characters: a refusal never
/// echoes a large input back.
pub fn quoted(value: &str) -> String {
    const SHOWN: usize = 64;
    match value.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{:?}… ({} characters)", &value[..cut], value.chars().count()),
        None => format!("{value:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_pattern() {
        for good in ["vp0", "fabric-1.0_pbft", &"x".repeat(63)] {
            assert!(check_name("name", good).is_ok(), "{good} refused");
        }
        for bad in ["", "-x", "a b", "ä", "a\0", &"x".repeat(64)] {
            assert!(check_name("name", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn user_ids_are_printable_ascii() {
        assert!(check_user_id("user_id", "alice@example.com").is_ok());
        for bad in ["", " ", "a b", "tab\t", "é", &"u".repeat(257)] {
            assert!(check_user_id("user_id", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn labels_and_text_are_bounded() {
        let ok = BTreeMap::from([("consensus_plugin".to_owned(), "pbft".to_owned())]);
        assert!(check_labels("labels", &ok).is_ok());
        let big = BTreeMap::from([("k".to_owned(), "v".repeat(20_000_000 / 1000))]);
        let err = check_labels("labels", &big).unwrap_err().to_string();
        assert!(
            err.len() < 200,
            "the refusal echoes the input: {} bytes",
            err.len()
        );
        let many: BTreeMap<String, String> = (0..33).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(check_labels("labels", &many).is_err());
        let nul = BTreeMap::from([("note".to_owned(), "a\0b".to_owned())]);
        assert!(check_text_map("metadata", &nul, METADATA_MAX).is_err());
        let unicode = BTreeMap::from([("note".to_owned(), "für Alice".to_owned())]);
        assert!(check_text_map("metadata", &unicode, METADATA_MAX).is_ok());
    }

    #[test]
    fn images_endpoints_and_addresses() {
        for good in [
            "busybox",
            "poolmanager/testnode:latest",
            "reg.io:5000/a/b@sha256:0f",
        ] {
            assert!(check_image("image", good).is_ok(), "{good} refused");
        }
        for bad in ["", "javascript:alert(1)x y", "a\0", "-x", &"i".repeat(256)] {
            assert!(check_image("image", bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_endpoint("endpoint", "unix:///var/run/docker.sock").is_ok());
        assert!(check_endpoint("endpoint", "sim://demo").is_ok());
        assert!(check_endpoint("endpoint", "ftp://x").is_err());
        assert!(check_endpoint("endpoint", "tcp://a b").is_err());
        assert!(check_address("public_address", "10.0.0.1").is_ok());
        assert!(check_address("public_address", "fd00::1").is_ok());
        assert!(check_address("public_address", "javascript:x/").is_err());
    }

    #[test]
    fn ttl_is_bounded() {
        assert!(check_ttl("ttl_seconds", Duration::from_secs(60)).is_ok());
        assert!(check_ttl("ttl_seconds", Duration::ZERO).is_err());
        assert!(check_ttl("ttl_seconds", Duration::from_secs(10_000_000_000_000)).is_err());
    }

    #[test]
    fn quoting_cuts_long_values() {
        assert_eq!(quoted("ab"), "\"ab\"");
        let long = quoted(&"x".repeat(10_000));
        assert!(long.len() < 100 && long.ends_with("(10000 characters)"), "{long}");
    }
}
