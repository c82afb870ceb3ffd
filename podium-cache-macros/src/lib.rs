//! `#[derive(Cacheable)]` for podium-cache models.
//!
//! The derive implements `podium_cache_core::entity::Cacheable` for a struct with named fields.
//! Use it through the re-export `podium_cache_core::Cacheable` (or the prelude):
//!
//! ```
//! use podium_cache_core::prelude::*; // Cacheable, Serialize, Deserialize, JsonSchema
//!
//! #[derive(Clone, Serialize, Deserialize, JsonSchema, Cacheable)]
//! #[serde(crate = "podium_cache_core::serde")] // no serde dependency of your own needed
//! #[schemars(crate = "podium_cache_core::schemars")] // nor a schemars one
//! #[cacheable(table = "Events")] // entity name "events"; override with `entity = "..."`
//! struct Event {
//!     id: String, // or mark another field #[cacheable(id)]
//!     name: String,
//!     #[cacheable(index)]
//!     slug: String,
//!     #[serde(default)]
//!     #[cacheable(references = "users")]
//!     owner: Vec<String>,
//! }
//!
//! let event = Event { id: "rec1".into(), name: "Demo".into(), slug: "demo".into(), owner: vec!["usr1".into()] };
//! assert_eq!(Event::meta().entity, "events");
//! assert_eq!(event.id(), "rec1");
//! assert_eq!(event.index_values(), vec![("slug", "demo".to_string())]);
//! assert_eq!(event.references()[0].ids, vec!["usr1"]);
//! ```
//!
//! The code the derive generates names only `::podium_cache_core` paths (and `::std`), never
//! `serde` or `schemars`, so it does not care how the model reaches them: through
//! `podium_cache_core`'s re-exports as above, or through the application's own `serde = "1"`
//! and `schemars = "1"` dependencies (`#[derive(serde::Serialize, schemars::JsonSchema, ..)]`
//! with no `crate` attributes), which cargo unifies with podium-cache-core's. Only the major
//! versions must match: serde 1 and schemars 1.
//!
//! # Attributes
//! - Container: `#[cacheable(table = "Airtable table name")]` (required) and optionally
//!   `entity = "name"` (the name used in cache keys; default: the table name lower-cased with
//!   every character other than an ASCII letter or digit replaced by `_`).
//! - Field: `#[cacheable(id)]` marks the record-id field when it is not named `id`;
//!   `#[cacheable(index)]` keeps a secondary index on a scalar field (`String`, a number, `bool`,
//!   `char`, or an `Option` of one); `#[cacheable(references = "entity")]` marks a linked-record
//!   field typed `Vec<String>` (many) or `Option<String>` (one).
//!
//! Field names follow serde: `#[serde(rename = "...")]` on a field and
//! `#[serde(rename_all = "...")]` on the struct give the Airtable field names, and fields with
//! `#[serde(skip)]` (or `skip_serializing` / `skip_deserializing`) are not Airtable fields.
//!
//! The model must also derive `JsonSchema` (schemars 1): the schema hash is computed from it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Data, DeriveInput, Expr, ExprLit, Field, Fields, GenericArgument, Ident, Lit, LitStr, Meta,
    PathArguments, Token, Type,
};

/// Derives `podium_cache_core::entity::Cacheable`; see the crate documentation for the
/// attributes.
#[proc_macro_derive(Cacheable, attributes(cacheable))]
pub fn derive_cacheable(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

const CONTAINER_KEYS: &str = "`table = \"...\"`, `entity = \"...\"`";
const FIELD_KEYS: &str = "`id`, `index`, `references = \"...\"`";

/// Scalar types a secondary index accepts (the last path segment).
const SCALARS: &[&str] = &[
    "String", "bool", "char", "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32",
    "u64", "u128", "usize", "f32", "f64",
];

/// serde's `rename_all` rules, applied to a Rust field name exactly as serde does.
#[derive(Clone, Copy)]
enum RenameRule {
    None,
    Lower,
    Upper,
    Pascal,
    Camel,
    Snake,
    ScreamingSnake,
    Kebab,
    ScreamingKebab,
}

const RENAME_RULES: &str = "\"lowercase\", \"UPPERCASE\", \"PascalCase\", \"camelCase\", \
     \"snake_case\", \"SCREAMING_SNAKE_CASE\", \"kebab-case\", \"SCREAMING-KEBAB-CASE\"";

impl RenameRule {
    fn parse(lit: &LitStr) -> syn::Result<Self> {
        Ok(match lit.value().as_str() {
            "lowercase" => Self::Lower,
            "UPPERCASE" => Self::Upper,
            "PascalCase" => Self::Pascal,
            "camelCase" => Self::Camel,
            "snake_case" => Self::Snake,
            "SCREAMING_SNAKE_CASE" => Self::ScreamingSnake,
            "kebab-case" => Self::Kebab,
            "SCREAMING-KEBAB-CASE" => Self::ScreamingKebab,
            other => {
                return Err(syn::Error::new(
                    lit.span(),
                    format!("unknown serde rename_all rule {other:?}; use one of {RENAME_RULES}"),
                ))
            }
        })
    }

    fn apply(self, field: &str) -> String {
        match self {
            Self::None | Self::Lower | Self::Snake => field.to_owned(),
            Self::Upper | Self::ScreamingSnake => field.to_ascii_uppercase(),
            Self::Pascal => {
                let mut out = String::with_capacity(field.len());
                let mut capitalize = true;
                for ch in field.chars() {
                    if ch == '_' {
                        capitalize = true;
                    } else if capitalize {
                        out.push(ch.to_ascii_uppercase());
                        capitalize = false;
                    } else {
                        out.push(ch);
                    }
                }
                out
            }
            Self::Camel => {
                let pascal = Self::Pascal.apply(field);
                let mut chars = pascal.chars();
                match chars.next() {
                    Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
                    None => pascal,
                }
            }
            Self::Kebab => field.replace('_', "-"),
            Self::ScreamingKebab => field.to_ascii_uppercase().replace('_', "-"),
        }
    }
}

/// What a model field is, once its attributes are read.
struct FieldInfo<'a> {
    field: &'a Field,
    ident: &'a Ident,
    /// The Airtable (serde) name.
    name: String,
    is_id: bool,
    index: bool,
    link: Option<Link>,
}

struct Link {
    entity: String,
    many: bool,
}

fn expand(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let fields = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => &named.named,
            Fields::Unnamed(_) | Fields::Unit => {
                return Err(syn::Error::new(
                    input.ident.span(),
                    "#[derive(Cacheable)] needs a struct with named fields (`struct Event { id: String, .. }`): \
                     a record's fields are looked up by name",
                ))
            }
        },
        Data::Enum(data) => {
            return Err(syn::Error::new(
                data.enum_token.span,
                "#[derive(Cacheable)] works on structs with named fields, not enums: \
                 write `struct Name { id: String, .. }`",
            ))
        }
        Data::Union(data) => {
            return Err(syn::Error::new(
                data.union_token.span,
                "#[derive(Cacheable)] works on structs with named fields, not unions",
            ))
        }
    };
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "#[derive(Cacheable)] does not support generic structs: each model needs its own \
             table, entity and schema hash; write a concrete struct per table",
        ));
    }

    let (table, entity) = container_attrs(input)?;
    let rename_all = serde_rename_all(input)?;

    let mut infos = Vec::new();
    let mut errors: Option<syn::Error> = None;
    for field in fields {
        match field_info(field, rename_all) {
            Ok(Some(info)) => infos.push(info),
            Ok(None) => {}
            Err(err) => match &mut errors {
                Some(all) => all.combine(err),
                None => errors = Some(err),
            },
        }
    }
    if let Some(err) = errors {
        return Err(err);
    }

    let id_index = pick_id(input, &mut infos)?;
    let id = &infos[id_index];
    let id_ident = id.ident;
    let id_key = &id.name;

    let mut field_metas = Vec::new();
    let mut index_pushes = Vec::new();
    let mut references = Vec::new();
    for (i, info) in infos.iter().enumerate() {
        if i == id_index {
            continue;
        }
        let name = &info.name;
        let ident = info.ident;
        let index = info.index;
        let kind = match &info.link {
            None => quote!(::podium_cache_core::entity::FieldKind::Scalar),
            Some(Link { entity, many }) => {
                quote!(::podium_cache_core::entity::FieldKind::Link { entity: #entity, many: #many })
            }
        };
        field_metas.push(quote! {
            ::podium_cache_core::entity::FieldMeta { name: #name, kind: #kind, index: #index }
        });
        if info.index {
            index_pushes.push(index_push(info));
        }
        if let Some(Link { entity, many }) = &info.link {
            let span = info.field.ty.span();
            let ids = if *many {
                quote_spanned!(span=> self.#ident.iter().map(::std::string::String::as_str).collect())
            } else {
                quote_spanned!(span=> self.#ident.as_deref().into_iter().collect())
            };
            references.push(quote! {
                ::podium_cache_core::entity::Reference { field: #name, entity: #entity, ids: #ids }
            });
        }
    }

    let ident = &input.ident;
    let id_span = id.field.ty.span();
    let id_expr = quote_spanned!(id_span=> ::core::convert::AsRef::<str>::as_ref(&self.#id_ident));
    Ok(quote! {
        #[automatically_derived]
        impl ::podium_cache_core::entity::Cacheable for #ident {
            fn meta() -> &'static ::podium_cache_core::entity::EntityMeta {
                static META: ::podium_cache_core::entity::EntityMeta =
                    ::podium_cache_core::entity::EntityMeta {
                        table: #table,
                        entity: #entity,
                        id_key: #id_key,
                        fields: &[#(#field_metas),*],
                    };
                &META
            }

            fn schema_hash() -> &'static str {
                static HASH: ::std::sync::OnceLock<::std::string::String> =
                    ::std::sync::OnceLock::new();
                HASH.get_or_init(::podium_cache_core::entity::schema_hash_of::<Self>)
            }

            fn id(&self) -> &str {
                #id_expr
            }

            #[allow(unused_mut)]
            fn index_values(&self) -> ::std::vec::Vec<(&'static str, ::std::string::String)> {
                let mut values = ::std::vec::Vec::new();
                #(#index_pushes)*
                values
            }

            fn references(&self) -> ::std::vec::Vec<::podium_cache_core::entity::Reference<'_>> {
                ::std::vec![#(#references),*]
            }
        }
    })
}

/// The statement pushing one indexed field's value (if any) onto `values`.
fn index_push(info: &FieldInfo<'_>) -> TokenStream2 {
    let name = &info.name;
    let ident = info.ident;
    let span = info.field.ty.span();
    let (optional, is_string) = match scalar_of(&info.field.ty) {
        Some(Scalar { optional, string }) => (optional, string),
        // Unreachable: field_info rejected non-scalar indexes.
        None => (false, false),
    };
    // An empty text value is an empty Airtable cell, not a value to look a record up by.
    let push = |value: TokenStream2| {
        if is_string {
            quote_spanned!(span=> {
                let value: &::std::string::String = #value;
                if !value.is_empty() {
                    values.push((#name, ::std::clone::Clone::clone(value)));
                }
            })
        } else {
            quote_spanned!(span=> values.push((#name, ::std::string::ToString::to_string(#value)));)
        }
    };
    if optional {
        let body = push(quote!(value));
        quote_spanned!(span=> if let ::std::option::Option::Some(value) = &self.#ident { #body })
    } else {
        push(quote!(&self.#ident))
    }
}

struct Scalar {
    optional: bool,
    string: bool,
}

/// `Some` when `ty` is an index-able scalar or an `Option` of one.
fn scalar_of(ty: &Type) -> Option<Scalar> {
    if let Some(inner) = generic_arg(ty, "Option") {
        let name = last_segment(inner)?;
        return SCALARS.contains(&name.as_str()).then(|| Scalar {
            optional: true,
            string: name == "String",
        });
    }
    let name = last_segment(ty)?;
    if generic_arg(ty, &name).is_some() {
        return None;
    }
    SCALARS.contains(&name.as_str()).then(|| Scalar {
        optional: false,
        string: name == "String",
    })
}

/// The last path segment of a plain path type (`std::string::String` → `String`).
fn last_segment(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(path) if path.qself.is_none() => {
            path.path.segments.last().map(|s| s.ident.to_string())
        }
        Type::Group(group) => last_segment(&group.elem),
        Type::Paren(paren) => last_segment(&paren.elem),
        _ => None,
    }
}

/// For `Wrapper<T>` (any path ending in `wrapper`), the `T`.
fn generic_arg<'t>(ty: &'t Type, wrapper: &str) -> Option<&'t Type> {
    let path = match ty {
        Type::Path(path) if path.qself.is_none() => path,
        Type::Group(group) => return generic_arg(&group.elem, wrapper),
        Type::Paren(paren) => return generic_arg(&paren.elem, wrapper),
        _ => return None,
    };
    let last = path.path.segments.last()?;
    if last.ident != wrapper {
        return None;
    }
    match &last.arguments {
        PathArguments::AngleBracketed(args) if args.args.len() == 1 => match args.args.first() {
            Some(GenericArgument::Type(inner)) => Some(inner),
            _ => None,
        },
        _ => None,
    }
}

fn is_string(ty: &Type) -> bool {
    last_segment(ty).as_deref() == Some("String") && generic_arg(ty, "String").is_none()
}

/// Reads `#[cacheable(table = "...", entity = "...")]` on the struct.
fn container_attrs(input: &DeriveInput) -> syn::Result<(String, String)> {
    let mut table: Option<LitStr> = None;
    let mut entity: Option<LitStr> = None;
    for attr in input
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("cacheable"))
    {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("table") {
                table = Some(meta.value()?.parse()?);
                Ok(())
            } else if meta.path.is_ident("entity") {
                entity = Some(meta.value()?.parse()?);
                Ok(())
            } else {
                Err(meta.error(format!(
                    "unknown #[cacheable] key `{}` on the struct; the struct takes {CONTAINER_KEYS} \
                     (`id`, `index` and `references` go on fields)",
                    path_text(&meta.path)
                )))
            }
        })?;
    }
    let Some(table) = table else {
        return Err(syn::Error::new(
            input.ident.span(),
            format!(
                "#[derive(Cacheable)] needs the Airtable table name: add #[cacheable(table = \"{}s\")] \
                 above the struct",
                input.ident
            ),
        ));
    };
    if table.value().trim().is_empty() {
        return Err(syn::Error::new(
            table.span(),
            "the table name is empty: write the Airtable table's name, e.g. #[cacheable(table = \"Events\")]",
        ));
    }
    let entity_name = match &entity {
        Some(lit) => {
            let value = lit.value();
            let valid = !value.is_empty()
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                return Err(syn::Error::new(
                    lit.span(),
                    "the entity name is part of every cache key: use ASCII letters, digits, `_` or `-`, \
                     e.g. #[cacheable(entity = \"events\")]",
                ));
            }
            value
        }
        None => table
            .value()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect(),
    };
    Ok((table.value(), entity_name))
}

/// Reads `#[serde(rename_all = "...")]` (or `rename_all(serialize = "...")`) on the struct.
fn serde_rename_all(input: &DeriveInput) -> syn::Result<RenameRule> {
    let mut rule = RenameRule::None;
    for meta in serde_metas(&input.attrs) {
        if !meta.path().is_ident("rename_all") {
            continue;
        }
        if let Some(lit) = serialize_name(&meta) {
            rule = RenameRule::parse(&lit)?;
        }
    }
    Ok(rule)
}

/// Every item inside `#[serde(...)]` attributes; attributes serde itself would reject are skipped
/// (serde reports them).
fn serde_metas(attrs: &[syn::Attribute]) -> Vec<Meta> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("serde"))
        .filter_map(|a| {
            a.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
                .ok()
        })
        .flatten()
        .collect()
}

/// The serialize-side string of `key = "x"` or `key(serialize = "x", ..)`.
fn serialize_name(meta: &Meta) -> Option<LitStr> {
    match meta {
        Meta::NameValue(nv) => lit_str(&nv.value),
        Meta::List(list) => list
            .parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
            .ok()?
            .into_iter()
            .find_map(|inner| match inner {
                Meta::NameValue(nv) if nv.path.is_ident("serialize") => lit_str(&nv.value),
                _ => None,
            }),
        Meta::Path(_) => None,
    }
}

fn lit_str(expr: &Expr) -> Option<LitStr> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(s.clone()),
        _ => None,
    }
}

fn path_text(path: &syn::Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}

/// Reads one field's serde and cacheable attributes; `None` for fields serde skips.
fn field_info(field: &Field, rename_all: RenameRule) -> syn::Result<Option<FieldInfo<'_>>> {
    let Some(ident) = field.ident.as_ref() else {
        return Err(syn::Error::new(field.span(), "expected a named field"));
    };
    let mut rename: Option<LitStr> = None;
    let mut skipped = false;
    for meta in serde_metas(&field.attrs) {
        let path = meta.path();
        if path.is_ident("rename") {
            if let Some(lit) = serialize_name(&meta) {
                rename = Some(lit);
            }
        } else if path.is_ident("skip")
            || path.is_ident("skip_serializing")
            || path.is_ident("skip_deserializing")
        {
            skipped = true;
        } else if path.is_ident("flatten") {
            return Err(syn::Error::new(
                path.span(),
                "#[serde(flatten)] is not supported on a Cacheable model: Airtable records are flat, \
                 so list the fields directly in the struct",
            ));
        }
    }

    let mut is_id = false;
    let mut index = false;
    let mut references: Option<LitStr> = None;
    for attr in field
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("cacheable"))
    {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("id") {
                is_id = true;
                Ok(())
            } else if meta.path.is_ident("index") {
                index = true;
                Ok(())
            } else if meta.path.is_ident("references") {
                references = Some(meta.value()?.parse()?);
                Ok(())
            } else {
                let key = path_text(&meta.path);
                let hint = if key == "table" || key == "entity" {
                    format!(" (`{key}` goes on the struct: #[cacheable({key} = \"...\")])")
                } else {
                    String::new()
                };
                Err(meta.error(format!(
                    "unknown #[cacheable] key `{key}` on a field; a field takes {FIELD_KEYS}{hint}"
                )))
            }
        })?;
    }

    let has_cacheable = is_id || index || references.is_some();
    if skipped {
        if has_cacheable {
            return Err(syn::Error::new(
                ident.span(),
                "this field is skipped by serde, so it is not an Airtable field: remove \
                 #[serde(skip..)] or the #[cacheable(..)] attribute",
            ));
        }
        return Ok(None);
    }

    let mut name = match &rename {
        Some(lit) => lit.value(),
        None => rename_all.apply(&unraw(ident)),
    };
    if name.is_empty() {
        name = unraw(ident);
    }

    if index && scalar_of(&field.ty).is_none() {
        return Err(syn::Error::new(
            field.ty.span(),
            "#[cacheable(index)] needs a scalar field: String, a number, bool, char, or an Option \
             of one (one value to look the record up by); remove `index` here or index a scalar field",
        ));
    }
    let link = match references {
        None => None,
        Some(lit) => {
            if lit.value().trim().is_empty() {
                return Err(syn::Error::new(
                    lit.span(),
                    "name the entity the linked records belong to, e.g. #[cacheable(references = \"users\")]",
                ));
            }
            let many = if generic_arg(&field.ty, "Vec").is_some_and(is_string) {
                true
            } else if generic_arg(&field.ty, "Option").is_some_and(is_string) {
                false
            } else {
                return Err(syn::Error::new(
                    field.ty.span(),
                    "#[cacheable(references = \"..\")] needs a linked-record field typed Vec<String> \
                     (many linked records) or Option<String> (at most one): change the field's type",
                ));
            };
            Some(Link {
                entity: lit.value(),
                many,
            })
        }
    };
    if is_id && (index || link.is_some()) {
        return Err(syn::Error::new(
            ident.span(),
            "the id field cannot also be `index` or `references`: the record id is already the key",
        ));
    }
    Ok(Some(FieldInfo {
        field,
        ident,
        name,
        is_id,
        index,
        link,
    }))
}

/// Chooses the id field: the one marked `#[cacheable(id)]`, else the one named `id`.
fn pick_id(input: &DeriveInput, infos: &mut [FieldInfo<'_>]) -> syn::Result<usize> {
    let marked: Vec<usize> = (0..infos.len()).filter(|&i| infos[i].is_id).collect();
    match marked.as_slice() {
        [one] => return Ok(*one),
        [_, second, ..] => {
            return Err(syn::Error::new(
                infos[*second].ident.span(),
                "only one field can be #[cacheable(id)]",
            ))
        }
        [] => {}
    }
    match infos.iter().position(|f| unraw(f.ident) == "id") {
        Some(i) if infos[i].index || infos[i].link.is_some() => Err(syn::Error::new(
            infos[i].ident.span(),
            "the id field cannot also be `index` or `references`: the record id is already the key",
        )),
        Some(i) => Ok(i),
        None => Err(syn::Error::new(
            input.ident.span(),
            "a Cacheable model needs a record-id field: name a field `id` or mark one #[cacheable(id)]",
        )),
    }
}

/// `Ident::to_string` without a leading `r#`.
fn unraw(ident: &Ident) -> String {
    ident.unraw().to_string()
}
