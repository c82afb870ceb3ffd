//! Unit tests of the policy.

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{HeaderMap, StatusCode};

use super::*;

fn parts(builder: http::request::Builder) -> Parts {
    match builder.body(()) {
        Ok(req) => req.into_parts().0,
        Err(err) => panic!("bad test request: {err}"),
    }
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, http::HeaderValue::from_static(value));
    }
    map
}

#[test]
fn query_order_does_not_change_the_key_but_values_do() {
    let a = default_request_key(&parts(http::Request::get("/x?b=2&a=1")));
    let b = default_request_key(&parts(http::Request::get("/x?a=1&b=2")));
    let c = default_request_key(&parts(http::Request::get("/x?a=1&b=3")));
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn an_allow_list_decodes_names_and_keeps_repeated_values_in_order() {
    let key = |uri: &str| allowed_request_key(&parts(http::Request::get(uri)), &["tag", "q"]);
    assert_eq!(key("/s?tag=b&x=1&tag=a&q=a+b"), "GET /s?q=a+b&tag=b&tag=a");
    assert_eq!(key("/s?%74ag=b&tag=a&q=a%20b"), key("/s?q=a+b&tag=b&tag=a"));
    assert_ne!(key("/s?tag=a&tag=b"), key("/s?tag=b&tag=a"));
    assert_eq!(key("/s?x=1&y"), "GET /s");

    let mut policy = Policy::default();
    policy
        .query_allow
        .insert("/s".into(), vec!["q".to_string()].into());
    assert!(!policy.keys_on_query(&parts(http::Request::get("/s?utm=1"))));
    assert!(policy.keys_on_query(&parts(http::Request::get("/s?q=1"))));
    assert!(policy.keys_on_query(&parts(http::Request::get("/t?utm=1"))));
    assert!(!policy.keys_on_query(&parts(http::Request::get("/t?&"))));
    let key_of = |p: Plan| match p {
        Plan::Lookup { key, .. } => key,
        other => panic!("expected a lookup, got {other:?}"),
    };
    assert_eq!(
        key_of(policy.plan(&parts(http::Request::get("/s?utm=1&q=z")))),
        "GET /s?q=z"
    );
}

#[test]
fn only_get_and_head_are_looked_up() {
    let policy = Policy::default();
    assert_eq!(
        policy.plan(&parts(http::Request::post("/x"))),
        Plan::Bypass(BypassReason::Method)
    );
    assert!(matches!(
        policy.plan(&parts(http::Request::head("/x"))),
        Plan::Lookup { .. }
    ));
}

#[test]
fn request_directives_are_ignored_unless_honoured_for_the_client() {
    let directives = [
        ("cache-control", "no-store"),
        ("cache-control", "no-cache"),
        ("cache-control", "max-age=0"),
        ("pragma", "no-cache"),
    ];
    let plan = |policy: &Policy, (name, value): (&str, &str), trusted: bool| {
        let mut request = http::Request::get("/x").header(name, value);
        if trusted {
            request = request.header("x-operator", "1");
        }
        policy.plan(&parts(request))
    };
    let lookup = Plan::Lookup {
        key: "GET /x".into(),
        request: CacheControl::default(),
        authorized: false,
    };
    let ignoring = Policy::default();
    let operators = Policy {
        request_directives: Audience::trusted(|p| p.headers.contains_key("x-operator")),
        ..Policy::default()
    };
    for directive in directives {
        assert_eq!(plan(&ignoring, directive, true), lookup, "{directive:?}");
        assert_eq!(plan(&operators, directive, false), lookup, "{directive:?}");
        assert_ne!(plan(&operators, directive, true), lookup, "{directive:?}");
    }
    let stale = http::Request::get("/x").header("cache-control", "max-age=5");
    assert_eq!(ignoring.plan(&parts(stale)), lookup);
}

#[test]
fn request_directives_choose_bypass_or_revalidation() {
    let policy = Policy {
        request_directives: Audience::Everyone,
        ..Policy::default()
    };
    let no_store = http::Request::get("/x").header("cache-control", "no-store");
    assert_eq!(
        policy.plan(&parts(no_store)),
        Plan::Bypass(BypassReason::RequestNoStore)
    );
    let no_cache = http::Request::get("/x").header("cache-control", "no-cache");
    assert!(matches!(
        policy.plan(&parts(no_cache)),
        Plan::Lookup { request, .. } if request.no_cache
    ));
    let pragma = http::Request::get("/x").header("pragma", "no-cache");
    assert!(matches!(
        policy.plan(&parts(pragma)),
        Plan::Lookup { request, .. } if request.no_cache
    ));
}

#[test]
fn credentials_bypass_unless_principals_are_keyed() {
    let mut policy = Policy {
        private_cookies: vec!["session".into()],
        ..Policy::default()
    };
    let auth = || http::Request::get("/x").header("authorization", "Bearer a");
    let cookie = || http::Request::get("/x").header("cookie", "theme=dark; session=s1");
    let harmless = http::Request::get("/x").header("cookie", "theme=dark");
    assert_eq!(
        policy.plan(&parts(auth())),
        Plan::Bypass(BypassReason::Private)
    );
    assert_eq!(
        policy.plan(&parts(cookie())),
        Plan::Bypass(BypassReason::Private)
    );
    assert!(matches!(policy.plan(&parts(harmless)), Plan::Lookup { .. }));

    let cookies = policy.private_cookies.clone();
    policy.principal = Some(Arc::new(move |p: &Parts| default_principal(&cookies, p)));
    let key_of = |p: Plan| match p {
        Plan::Lookup { key, .. } => key,
        other => panic!("expected a lookup, got {other:?}"),
    };
    let a = key_of(policy.plan(&parts(auth())));
    let b = key_of(policy.plan(&parts(
        http::Request::get("/x").header("authorization", "Bearer b"),
    )));
    assert_ne!(a, b, "two principals must never share an entry");
    assert!(!a.contains("Bearer"), "credentials must not appear in keys");
    assert_eq!(shared_key_of(&a), Some("GET /x"));
    assert_eq!(shared_key_of("GET /x"), None);
}

#[test]
fn a_principal_key_is_split_at_its_mark_not_at_an_earlier_line_feed() {
    let key = "GET /x\nvary:accept\nprincipal:alice";
    assert_eq!(shared_key_of(key), Some("GET /x\nvary:accept"));
    assert_eq!(shared_key_of("GET /x\ninvalidated"), None);
}

#[test]
fn response_rules_refuse_what_a_shared_cache_must_not_keep() {
    let policy = Policy::default();
    let ok = StatusCode::OK;
    for (pairs, reason) in [
        (vec![("cache-control", "no-store")], NotStored::NoStore),
        (
            vec![("cache-control", "private, max-age=60")],
            NotStored::Private,
        ),
        (vec![("cache-control", "no-cache")], NotStored::NoCache),
        (vec![("set-cookie", "a=b")], NotStored::SetCookie),
        (vec![("vary", "accept, *")], NotStored::VaryAll),
        (vec![("cache-control", "max-age=0")], NotStored::Expired),
        (
            vec![("expires", "Thu, 01 Jan 1970 00:00:00 GMT")],
            NotStored::Expired,
        ),
    ] {
        assert_eq!(
            policy.storability(ok, &headers(&pairs), false),
            Err(reason),
            "{pairs:?}"
        );
    }
    assert_eq!(
        policy.storability(StatusCode::INTERNAL_SERVER_ERROR, &HeaderMap::new(), false),
        Err(NotStored::Status)
    );
}

#[test]
fn max_age_and_s_maxage_only_lower_the_ttl() {
    let policy = Policy {
        ttl: Duration::from_secs(100),
        ..Policy::default()
    };
    let ttl = |pairs: &[(&'static str, &'static str)]| {
        policy
            .storability(StatusCode::OK, &headers(pairs), false)
            .map(|f| f.ttl.as_secs())
    };
    assert_eq!(ttl(&[]), Ok(100));
    assert_eq!(ttl(&[("cache-control", "max-age=10")]), Ok(10));
    assert_eq!(ttl(&[("cache-control", "max-age=1000")]), Ok(100));
    assert_eq!(ttl(&[("cache-control", "max-age=10, s-maxage=20")]), Ok(20));
}

#[test]
fn stale_while_revalidate_is_capped_and_must_revalidate_disables_it() {
    let policy = Policy {
        max_swr: Duration::from_secs(50),
        ..Policy::default()
    };
    let swr = |value: &'static str| {
        policy
            .storability(StatusCode::OK, &headers(&[("cache-control", value)]), false)
            .map(|f| f.stale_while_revalidate.as_secs())
    };
    assert_eq!(swr("max-age=5, stale-while-revalidate=20"), Ok(20));
    assert_eq!(swr("max-age=5, stale-while-revalidate=500"), Ok(50));
    assert_eq!(
        swr("max-age=5, stale-while-revalidate=20, must-revalidate"),
        Ok(0)
    );
}

#[test]
fn variants_differ_by_the_varied_header_only() {
    let names = match vary(&headers(&[("vary", "Accept-Language, accept")])) {
        Vary::Names(n) => n,
        other => panic!("expected names, got {other:?}"),
    };
    assert_eq!(names, vec!["accept".to_string(), "accept-language".into()]);
    let en = variant_key("k", &names, &headers(&[("accept-language", "en")]));
    let fr = variant_key("k", &names, &headers(&[("accept-language", "fr")]));
    let en_again = variant_key(
        "k",
        &names,
        &headers(&[("accept-language", "en"), ("x-other", "1")]),
    );
    assert_ne!(en, fr);
    assert_eq!(en, en_again);
}
