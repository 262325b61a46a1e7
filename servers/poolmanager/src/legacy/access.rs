//! Who may call the original API, and on whose behalf a call acts.
//!
//! The original PoolManager had no tokens. Here a call carries the user token (or the
//! admin token) as a bearer token, like `/api/v1`; an operator may instead open the
//! legacy routes to networks the front-end services call from (`legacy_open_to`), so
//! that switching them is a change of base URL only. A token given is always checked.

use std::net::IpAddr;
use std::str::FromStr;

use poem::{Request, RequestBody};
use poem_openapi::registry::Registry;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use poolcore::{Actor, Cluster};

use super::envelope::Failure;
use crate::api::auth::{Role, UserAuth};

/// A network: an address and how many leading bits of it count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl FromStr for Network {
    type Err = String;

    /// Parses `10.0.0.0/8`, `fd00::/8`, or one address (`127.0.0.1`, `::1`).
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not an address or a network such as 10.0.0.0/8");
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix.parse::<u8>().map_err(|_| bad())?)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        if prefix > bits {
            return Err(bad());
        }
        Ok(Network { addr, prefix })
    }
}

impl Network {
    /// True when `ip` is in this network; an IPv4 address mapped into IPv6
    /// (`::ffff:10.0.0.1`) counts as the IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let keep = |bits: u32, value: u128| match self.prefix {
            0 => 0,
            p => value >> (bits - u32::from(p)),
        };
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                keep(32, u32::from(net).into()) == keep(32, u32::from(ip).into())
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => keep(128, net.into()) == keep(128, ip.into()),
            _ => false,
        }
    }
}

/// The networks whose callers may use the legacy routes without a token; none by
/// default. Set by the server from `legacy_open_to`, as request data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenNetworks(Vec<Network>);

impl OpenNetworks {
    /// The networks of `list`; the first entry that is not one is an error.
    pub fn parse(list: &[String]) -> Result<Self, String> {
        list.iter()
            .map(|entry| entry.parse().map_err(|e| format!("legacy_open_to: {e}")))
            .collect::<Result<_, _>>()
            .map(OpenNetworks)
    }

    /// True when `ip` is in one of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }
}

/// Who called a legacy route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// With the admin token: may act on any cluster.
    Admin,
    /// With the user token: the front-end service, acting for its users.
    User,
    /// Without a token, from a network opened to the legacy routes: as [`Caller::User`].
    OpenNetwork,
}

impl Caller {
    /// On whose behalf a call acts on `cluster`: the user named by `user_id` when
    /// given; else the operator for the admin token, and for the others the user
    /// holding the cluster (the original let its callers act on any cluster; here
    /// they reach applied ones only, never the pool's free clusters).
    pub fn actor<'a>(self, user_id: Option<&'a str>, cluster: &'a Cluster) -> Result<Actor<'a>, Failure> {
        match (self, user_id) {
            (_, Some(user)) => Ok(Actor::User(user)),
            (Caller::Admin, None) => Ok(Actor::Operator),
            (Caller::User | Caller::OpenNetwork, None) => match cluster.user_id.as_deref() {
                Some(holder) if cluster.is_applied() => Ok(Actor::User(holder)),
                _ => Err(Failure::forbidden(format!(
                    "cluster {} is {}, not applied to a user: only the admin token acts on free clusters",
                    cluster.id, cluster.status
                ))),
            },
        }
    }

    /// The caller of `request`: its bearer token when it has one, else its network.
    async fn of(request: &Request, body: &mut RequestBody) -> Result<Caller, Failure> {
        if request.headers().contains_key(poem::http::header::AUTHORIZATION) {
            return match UserAuth::from_request(request, body, ExtractParamOptions::default()).await {
                Ok(UserAuth(Role::Admin)) => Ok(Caller::Admin),
                Ok(UserAuth(Role::User)) => Ok(Caller::User),
                Err(_) => Err(Failure::unauthorized("the bearer token is not valid")),
            };
        }
        let open = request.data::<OpenNetworks>();
        let peer = request.remote_addr().as_socket_addr().map(|a| a.ip());
        match (open, peer) {
            (Some(open), Some(ip)) if open.contains(ip) => Ok(Caller::OpenNetwork),
            _ => Err(Failure::unauthorized(
                "this API needs the user token: send it as Authorization: Bearer <token>",
            )),
        }
    }
}

impl<'a> ApiExtractor<'a> for Caller {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        UserAuth::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        UserAuth::security_schemes()
    }

    /// Callers from networks opened by `legacy_open_to` need no token.
    fn has_security_fallback() -> bool {
        true
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        Ok(Caller::of(request, body).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn networks_hold_their_addresses() {
        let open = OpenNetworks::parse(&["10.0.0.0/8".into(), "192.168.1.7".into(), "fd00::/8".into()])
            .expect("networks");
        for inside in ["10.1.2.3", "192.168.1.7", "::ffff:10.0.0.1", "fd12::1"] {
            assert!(open.contains(ip(inside)), "{inside}");
        }
        for outside in ["11.0.0.1", "192.168.1.8", "fe80::1", "::1"] {
            assert!(!open.contains(ip(outside)), "{outside}");
        }
        let everyone = OpenNetworks::parse(&["0.0.0.0/0".into()]).expect("network");
        assert!(everyone.contains(ip("8.8.8.8")));
        assert!(
            !OpenNetworks::default().contains(ip("127.0.0.1")),
            "closed by default"
        );
    }

    #[test]
    fn bad_networks_are_named() {
        for bad in ["10.0.0.0/33", "::/129", "localhost", "10.0.0.0/x", ""] {
            let err = OpenNetworks::parse(&[bad.into()]).expect_err(bad);
            assert!(err.contains("legacy_open_to"), "{err}");
        }
    }

    #[test]
    fn without_user_id_the_user_token_acts_for_the_holder_only() {
        let mut cluster = Cluster::new("c", "bp", "h");
        cluster.status = poolcore::ClusterStatus::Ready;
        assert_eq!(Caller::Admin.actor(None, &cluster), Ok(Actor::Operator));
        assert_eq!(Caller::User.actor(None, &cluster).unwrap_err().code, 403);
        assert_eq!(Caller::User.actor(Some("bob"), &cluster), Ok(Actor::User("bob")));
        cluster.status = poolcore::ClusterStatus::Applied;
        cluster.user_id = Some("alice".into());
        assert_eq!(
            Caller::OpenNetwork.actor(None, &cluster),
            Ok(Actor::User("alice"))
        );
        assert_eq!(Caller::Admin.actor(Some("bob"), &cluster), Ok(Actor::User("bob")));
    }
}
