//! Examples of embedding `poolcore`; see `embed.rs`.
