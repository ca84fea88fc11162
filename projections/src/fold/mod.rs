//! The projection folds live in the domain crate (`wangge_domain::fold`, pure); the read
//! side's context for answers (the live grid, the category catalogue) is here.

pub use wangge_domain::fold::*;

pub mod context;

pub use context::FoldContext;
