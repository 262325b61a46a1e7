//! Request and response bodies of the REST API, by resource, and their mapping to
//! `poolcore`.
//!
//! Conventions, the same in every schema:
//! - an absent value is left out of a response, never sent as `null`
//!   (`skip_serializing_if_is_none` on every response object);
//! - request objects refuse unknown fields (`deny_unknown_fields`);
//! - fields whose type is another schema (an object or an enum) carry no doc comment,
//!   only a plain comment: OpenAPI 3.0 cannot put a description beside a `$ref`
//!   without wrapping it in a copy of the schema, so their meaning is told in the
//!   description of the object that holds them.

pub mod blueprints;
pub mod clusters;
pub mod events;
pub mod hosts;
pub mod pool;
pub mod rules;

use poolcore::limits;

/// Items on a page, from 1 to [`limits::PAGE_MAX`].
pub type Limit = rules::Bounded<1, { limits::PAGE_MAX }>;
/// Items skipped before a page.
pub type Offset = rules::Bounded<0, { u32::MAX as u64 }>;

/// A page of `limit` items from `offset`: what a listing takes.
pub fn page(limit: Limit, offset: Offset) -> poolcore::Page {
    poolcore::Page {
        offset: offset.get(),
        limit: limit.get(),
    }
}

/// [`limits::PAGE_DEFAULT`], the `limit` of a listing that gives none.
pub fn default_limit() -> Limit {
    Limit::new(limits::PAGE_DEFAULT)
}

/// No offset.
pub fn no_offset() -> Offset {
    Offset::new(0)
}

/// Declares a page of `$item`s: the items and the paging that produced them.
macro_rules! page_of {
    ($(#[$doc:meta])* $page:ident($name:literal) of $item:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, poem_openapi::Object)]
        #[oai(rename = $name)]
        pub struct $page {
            /// The page.
            pub items: Vec<$item>,
            /// How many matched in all.
            #[oai(validator(minimum(value = "0")))]
            pub total: u64,
            /// The `limit` asked for.
            #[oai(validator(minimum(value = "1")))]
            pub limit: u64,
            /// The `offset` asked for.
            #[oai(validator(minimum(value = "0")))]
            pub offset: u64,
        }

        impl $page {
            /// The page `listing` holds, made by `page`.
            pub fn of<T: Into<$item>>(listing: poolcore::Listing<T>, page: poolcore::Page) -> Self {
                $page {
                    items: listing.items.into_iter().map(Into::into).collect(),
                    total: listing.total,
                    limit: page.limit,
                    offset: page.offset,
                }
            }
        }
    };
}
pub(crate) use page_of;
