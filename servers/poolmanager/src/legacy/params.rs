//! Reading a request's keys the way the original PoolManager did (its `request_get`):
//! from the query string, else from a form body, else from a JSON body, which is
//! parsed whatever the content type says (`curl -d '{"action": …}'` sends JSON as a
//! form).

use std::marker::PhantomData;

use poem::{Request, RequestBody};
use poem_openapi::registry::{MetaMediaType, MetaParamIn, MetaRequest, MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde_json::{Map, Value};

use super::envelope::Failure;

/// Largest body read; the original's requests are a few keys.
pub const BODY_LIMIT: usize = 64 * 1024;

const FORM: &str = "application/x-www-form-urlencoded";

/// The keys of one request, where they were found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    query: Vec<(String, String)>,
    form: Vec<(String, String)>,
    json: Map<String, Value>,
}

/// One value as found: text from the query or a form, or a JSON value.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Found<'a> {
    Text(&'a str),
    Json(&'a Value),
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

impl Params {
    /// The keys of a request with `query` (the part after `?`), `content_type` and
    /// `body`. A form body is read only when the content type says so; any body is
    /// tried as a JSON object, and is ignored when it is not one.
    pub fn parse(query: &str, content_type: Option<&str>, body: &[u8]) -> Params {
        let pairs =
            |text: &[u8]| serde_urlencoded::from_bytes::<Vec<(String, String)>>(text).unwrap_or_default();
        let is_form = content_type.is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|mime| mime.trim().eq_ignore_ascii_case(FORM))
        });
        let json = match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        Params {
            query: pairs(query.as_bytes()),
            form: if is_form { pairs(body) } else { Vec::new() },
            json,
        }
    }

    /// Where `key` is: the query first, then the form, then the JSON body; a JSON
    /// `null` counts as missing.
    fn find(&self, key: &str) -> Option<Found<'_>> {
        first(&self.query, key)
            .or_else(|| first(&self.form, key))
            .map(Found::Text)
            .or_else(|| self.json.get(key).filter(|v| !v.is_null()).map(Found::Json))
    }

    /// Every key given, wherever it was.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        let pairs = self.query.iter().chain(&self.form).map(|(k, _)| k.as_str());
        pairs.chain(self.json.keys().map(String::as_str))
    }

    /// `key` as text, empty text included; JSON numbers and booleans as they are
    /// written. A JSON array or object is refused.
    pub fn text(&self, key: &str) -> Result<Option<String>, Failure> {
        match self.find(key) {
            None => Ok(None),
            Some(Found::Text(text)) => Ok(Some(text.to_owned())),
            Some(Found::Json(Value::String(text))) => Ok(Some(text.clone())),
            Some(Found::Json(value @ (Value::Number(_) | Value::Bool(_)))) => Ok(Some(value.to_string())),
            Some(Found::Json(value)) => Err(Failure::invalid(format!(
                "Invalid {key}: {value} is not a single value"
            ))),
        }
    }

    /// `key` as text, missing when empty: the original took `""` for "not given".
    pub fn given(&self, key: &str) -> Result<Option<String>, Failure> {
        Ok(self.text(key)?.filter(|text| !text.is_empty()))
    }

    /// `key` as a yes/no: `true`/`false` in any case, `1`/`0`, or a JSON boolean.
    pub fn flag(&self, key: &str) -> Result<Option<bool>, Failure> {
        let Some(text) = self.given(key)? else {
            return Ok(None);
        };
        match text.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            _ => Err(Failure::invalid(format!(
                "Invalid {key}: {text:?} is not true, false, 1 or 0"
            ))),
        }
    }

    /// `key` as a whole number, from text or a JSON number.
    pub fn number(&self, key: &str) -> Result<Option<u32>, Failure> {
        let Some(text) = self.given(key)? else {
            return Ok(None);
        };
        text.parse()
            .map(Some)
            .map_err(|_| Failure::invalid(format!("Invalid {key}: {text:?} is not a whole number")))
    }
}

/// Reading a typed set of keys from [`Params`].
pub trait FromParams: Sized {
    /// The keys of `params`, typed and checked.
    fn from_params(params: &Params) -> Result<Self, Failure>;
}

/// The keys of an operation, read by [`Params::parse`] and documented as the object
/// `T`: its properties as query parameters (style `form`, exploded: `?user_id=a&size=4`)
/// and, with `BODY`, as an optional form or JSON body too.
pub struct Keys<T, const BODY: bool> {
    params: Params,
    documented: PhantomData<fn() -> T>,
}

/// Keys from the query string (and any body the request has, undocumented).
pub type QueryKeys<T> = Keys<T, false>;

/// Keys from the query string, a form body or a JSON body.
pub type QueryOrBodyKeys<T> = Keys<T, true>;

impl<T: FromParams, const BODY: bool> Keys<T, BODY> {
    /// The typed keys.
    pub fn read(&self) -> Result<T, Failure> {
        T::from_params(&self.params)
    }
}

impl<'a, T: Type, const BODY: bool> ApiExtractor<'a> for Keys<T, BODY> {
    const TYPES: &'static [ApiExtractorType] = if BODY {
        &[ApiExtractorType::Parameter, ApiExtractorType::RequestObject]
    } else {
        &[ApiExtractorType::Parameter]
    };

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn param_in() -> Option<MetaParamIn> {
        Some(MetaParamIn::Query)
    }

    fn param_schema_ref() -> Option<MetaSchemaRef> {
        Some(T::schema_ref())
    }

    fn request_meta() -> Option<MetaRequest> {
        let media = |content_type| MetaMediaType {
            content_type,
            schema: T::schema_ref(),
        };
        BODY.then(|| MetaRequest {
            description: Some("The same keys as a form or a JSON object; a key in the query string wins."),
            content: vec![media("application/json"), media(FORM)],
            required: false,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let bytes = body
            .take()?
            .into_bytes_limit(BODY_LIMIT)
            .await
            .map_err(|e| Failure::invalid(format!("could not read the request body: {e}")))?;
        let params = Params::parse(
            request.uri().query().unwrap_or_default(),
            request.content_type(),
            &bytes,
        );
        Ok(Keys {
            params,
            documented: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: Option<&str> = Some("application/json");
    const FORM_TYPE: Option<&str> = Some("application/x-www-form-urlencoded; charset=utf-8");

    #[test]
    fn the_query_wins_then_the_form_then_json() {
        let p = Params::parse("user_id=q", FORM_TYPE, b"user_id=f&size=4");
        assert_eq!(p.text("user_id").unwrap().as_deref(), Some("q"));
        assert_eq!(p.number("size").unwrap(), Some(4));
        let p = Params::parse(
            "",
            JSON,
            br#"{"user_id": "j", "size": 4, "allow_multiple": false}"#,
        );
        assert_eq!(p.text("user_id").unwrap().as_deref(), Some("j"));
        assert_eq!(p.number("size").unwrap(), Some(4));
        assert_eq!(p.flag("allow_multiple").unwrap(), Some(false));
        let p = Params::parse("action=apply", JSON, br#"{"action": "release", "user_id": "j"}"#);
        assert_eq!(p.text("action").unwrap().as_deref(), Some("apply"));
        assert_eq!(p.text("user_id").unwrap().as_deref(), Some("j"));
    }

    #[test]
    fn json_is_read_whatever_the_content_type() {
        let body = br#"{"action": "apply", "user_id": "u"}"#;
        for content_type in [None, FORM_TYPE, Some("text/plain"), JSON] {
            let p = Params::parse("", content_type, body);
            assert_eq!(
                p.text("user_id").unwrap().as_deref(),
                Some("u"),
                "{content_type:?}"
            );
        }
        let p = Params::parse("", JSON, b"user_id=u");
        assert_eq!(p.text("user_id").unwrap(), None, "a form is read only as a form");
        let p = Params::parse("", None, b"[1, 2]");
        assert_eq!(p.keys().count(), 0, "a JSON body that is no object holds no keys");
    }

    #[test]
    fn empty_means_not_given_and_values_are_typed() {
        let p = Params::parse("user_id=&size=&new=", None, b"");
        assert_eq!(p.text("user_id").unwrap().as_deref(), Some(""));
        assert_eq!(p.given("user_id").unwrap(), None);
        assert_eq!(p.number("size").unwrap(), None);
        assert_eq!(p.flag("new").unwrap(), None);
        for (text, flag) in [
            ("True", true),
            ("true", true),
            ("1", true),
            ("False", false),
            ("0", false),
        ] {
            let p = Params::parse(&format!("allow_multiple={text}"), None, b"");
            assert_eq!(p.flag("allow_multiple").unwrap(), Some(flag), "{text}");
        }
        let p = Params::parse("allow_multiple=yes&size=four", None, b"");
        assert_eq!(p.flag("allow_multiple").unwrap_err().code, 400);
        assert!(p.number("size").unwrap_err().error.contains("four"));
        let p = Params::parse("", JSON, br#"{"user_id": null, "size": [4], "id": 7}"#);
        assert_eq!(p.text("user_id").unwrap(), None, "null is missing");
        assert!(p.text("size").is_err(), "an array is no value");
        assert_eq!(p.text("id").unwrap().as_deref(), Some("7"));
    }

    #[test]
    fn keys_come_from_everywhere() {
        let p = Params::parse("a=1", FORM_TYPE, b"b=2");
        assert_eq!(p.keys().collect::<Vec<_>>(), ["a", "b"]);
        let p = Params::parse("a=1&c=%20x", JSON, br#"{"b": 2}"#);
        assert_eq!(p.keys().collect::<Vec<_>>(), ["a", "c", "b"]);
        assert_eq!(p.text("c").unwrap().as_deref(), Some(" x"), "percent-decoded");
    }
}
