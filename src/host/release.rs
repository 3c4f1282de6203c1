//! The release check of `check` (spec §3.3): fetch the release list (GitHub's API, or any
//! http/https URL named by `KATA_RELEASE_URL`, spec Q21), keep the valid releases, and say
//! whether a newer one exists or list the newer ones (spec Q22). Parsing and deciding are
//! pure functions; only [`fetch_releases`] touches the network.

use std::cmp::Ordering;
use std::time::Duration;

use semver::Version;
use slog::{Logger, debug, info, warn};

/// Replaces the release list URL (a mirror, an air-gapped site, a test server).
pub const RELEASE_URL_ENV: &str = "KATA_RELEASE_URL";
/// Seconds to wait for the release server (default [`DEFAULT_TIMEOUT`]).
pub const RELEASE_TIMEOUT_ENV: &str = "KATA_RELEASE_TIMEOUT";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Release list of Kata Containers 2.x and later.
pub const KATA_RELEASES_URL: &str =
    "https://api.github.com/repos/kata-containers/kata-containers/releases";
/// Release list of the 1.x runtime.
pub const RUNTIME_RELEASES_URL: &str =
    "https://api.github.com/repos/kata-containers/runtime/releases";
/// Download URLs a release asset must have (the Go tool's rule).
pub const DOWNLOAD_PREFIXES: [&str; 2] = [
    "https://github.com/kata-containers/kata-containers/releases/download",
    "https://github.com/kata-containers/runtime/releases/download",
];
/// Pages followed through `Link: <...>; rel="next"` (spec Q23: the Go tool read one page).
pub const MAX_PAGES: usize = 10;

const RATE_LIMIT_WARNING: &str = "API rate limit exceeded. Try again later. Read https://docs.github.com/apps/building-github-apps/understanding-rate-limits-for-github-apps for more information";

/// The running version as strict semver.
pub fn current_version(text: &str) -> Result<Version, String> {
    Version::parse(text).map_err(|e| {
        format!("BUG: Current version of kata-runtime ({text}) has invalid SemVer version: {e}")
    })
}

/// Where to look for releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub url: String,
    /// Set by `KATA_RELEASE_URL`: assets downloaded from that server are accepted too.
    pub custom: bool,
}

/// The release URL for `current`, or the override (any http or https URL, spec Q21).
pub fn release_source(current: &Version, override_url: Option<&str>) -> Result<Source, String> {
    if let Some(u) = override_url.filter(|u| !u.is_empty()) {
        let parsed =
            reqwest::Url::parse(u).map_err(|e| format!("Release URL \"{u}\" is not valid: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(format!(
                "Release URL \"{u}\" is not valid: {RELEASE_URL_ENV} must be an http or https URL"
            ));
        }
        return Ok(Source {
            url: u.to_string(),
            custom: true,
        });
    }
    let url = match current.major {
        0 => return Err(format!("invalid current version: {current}")),
        1 => RUNTIME_RELEASES_URL,
        _ => KATA_RELEASES_URL,
    };
    Ok(Source {
        url: url.to_string(),
        custom: false,
    })
}

/// One usable release.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Release {
    #[serde(serialize_with = "as_string")]
    pub version: Version,
    /// The first asset's creation time.
    pub date: String,
    /// The first asset's download URL.
    pub url: String,
    pub prerelease: bool,
}

fn as_string<S: serde::Serializer>(v: &Version, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl Release {
    /// `VERSION;DATE;URL`, the list format.
    pub fn list_line(&self) -> String {
        format!("{};{};{}", self.version, self.date, self.url)
    }
}

/// The origin (`scheme://host[:port]`) of a URL, for accepting a mirror's own downloads.
fn origin(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    let mut o = format!("{}://{}", u.scheme(), u.host_str()?);
    if let Some(p) = u.port() {
        o.push_str(&format!(":{p}"));
    }
    Some(o)
}

fn validate(
    obj: &serde_json::Map<String, serde_json::Value>,
    mirror: Option<&str>,
) -> Result<Release, String> {
    let tag = obj
        .get("tag_name")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .ok_or("no tag_name")?;
    let version = Version::parse(tag).map_err(|e| format!("tag_name {tag:?}: {e}"))?;
    let asset = obj
        .get("assets")
        .and_then(|v| v.as_array())
        .and_then(|a| a.first())
        .and_then(|a| a.as_object())
        .ok_or("no assets")?;
    let url = asset
        .get("browser_download_url")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let allowed = DOWNLOAD_PREFIXES.iter().any(|p| url.starts_with(p))
        || mirror.is_some_and(|m| url.starts_with(&format!("{m}/")));
    if !allowed {
        return Err(format!(
            "download URL {url:?} is not a Kata Containers release URL"
        ));
    }
    asset
        .get("name")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .ok_or("asset has no name")?;
    let date = asset
        .get("created_at")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .ok_or("asset has no created_at")?;
    Ok(Release {
        prerelease: !version.pre.is_empty(),
        version,
        date: date.to_string(),
        url: url.to_string(),
    })
}

/// Parses one page of release JSON (an array of objects). Invalid releases are skipped with
/// a debug record; pre-releases are dropped unless `include_all`. The result is sorted by
/// ascending semver precedence.
pub fn parse_releases(
    body: &str,
    include_all: bool,
    source: &Source,
    log: &Logger,
) -> Result<Vec<Release>, String> {
    let items: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(body).map_err(|e| format!("failed to unpack release details: {e}"))?;
    let mirror = if source.custom {
        origin(&source.url)
    } else {
        None
    };
    let mut out = Vec::new();
    for obj in &items {
        match validate(obj, mirror.as_deref()) {
            Ok(r) if r.prerelease && !include_all => {
                debug!(log, "ignoring pre-release"; "version" => r.version.to_string());
            }
            Ok(r) => out.push(r),
            Err(reason) => debug!(log, "ignoring invalid release version"; "reason" => reason),
        }
    }
    sort_releases(&mut out);
    Ok(out)
}

fn sort_releases(v: &mut [Release]) {
    v.sort_by(|a, b| a.version.cmp_precedence(&b.version));
}

/// The releases strictly newer than `current`, ascending.
pub fn newer_releases<'a>(current: &Version, releases: &'a [Release]) -> Vec<&'a Release> {
    releases
        .iter()
        .filter(|r| r.version.cmp_precedence(current) == Ordering::Greater)
        .collect()
}

/// How `new` differs from `current`: `major`, `minor`, `patch` (with ` pre-release` when
/// the new one is a pre-release), `pre-release`, or `final` for the final release of the
/// running pre-release (spec Q24: the Go tool called that `major`).
pub fn release_kind(current: &Version, new: &Version) -> String {
    let suffix = if new.pre.is_empty() {
        ""
    } else {
        " pre-release"
    };
    let base = if new.major > current.major {
        "major"
    } else if new.major == current.major && new.minor > current.minor {
        "minor"
    } else if (new.major, new.minor) == (current.major, current.minor) && new.patch > current.patch
    {
        "patch"
    } else if !new.pre.is_empty() {
        return "pre-release".to_string();
    } else {
        return "final".to_string();
    };
    format!("{base}{suffix}")
}

/// The result of check mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    NoReleases,
    NoNewer,
    Newer { kind: String, release: Release },
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::NoReleases => f.write_str("No releases available"),
            Verdict::NoNewer => f.write_str("No newer release available"),
            Verdict::Newer { kind, release } => write!(
                f,
                "Newer {kind} release available: {} (url: {}, date: {})",
                release.version, release.url, release.date
            ),
        }
    }
}

/// Check mode: is there a release newer than `current`?
pub fn verdict(current: &Version, releases: &[Release]) -> Verdict {
    if releases.is_empty() {
        return Verdict::NoReleases;
    }
    match newer_releases(current, releases).last() {
        None => Verdict::NoNewer,
        Some(r) => Verdict::Newer {
            kind: release_kind(current, &r.version),
            release: (*r).clone(),
        },
    }
}

/// The `rel="next"` target of a `Link` header.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let mut pieces = part.split(';');
        let target = pieces.next()?.trim();
        let is_next = pieces.any(|p| {
            let p = p.trim();
            p == "rel=\"next\"" || p == "rel=next"
        });
        let url = target.strip_prefix('<')?.strip_suffix('>')?;
        (is_next && (url.starts_with("https://") || url.starts_with("http://")))
            .then(|| url.to_string())
    })
}

/// GitHub's rate-limit answer (the Go tool's test: 403 and `limit exceeded` in the body).
pub fn is_rate_limited(status: u16, body: &str) -> bool {
    status == 403 && body.contains("limit exceeded")
}

/// The timeout from `KATA_RELEASE_TIMEOUT` (seconds) or the default.
pub fn timeout_from_env() -> Result<Duration, String> {
    match std::env::var(RELEASE_TIMEOUT_ENV) {
        Ok(v) if !v.is_empty() => parse_timeout(&v),
        _ => Ok(DEFAULT_TIMEOUT),
    }
}

/// A positive number of seconds that fits a [`Duration`].
pub fn parse_timeout(v: &str) -> Result<Duration, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("{RELEASE_TIMEOUT_ENV}=\"{v}\" is not a positive number of seconds"))
}

/// What the network part found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fetched {
    pub releases: Vec<Release>,
    /// GitHub refused with its rate limit; the list is what was read before.
    pub rate_limited: bool,
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// Fetches and parses the release list, following `Link` pages.
pub async fn fetch_releases(
    source: &Source,
    include_all: bool,
    timeout: Duration,
    log: &Logger,
) -> Result<Fetched, String> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(format!(
            "kata-runtime/{} (release check; +https://github.com/kata-containers)",
            crate::version::VERSION
        ))
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {}", error_chain(&e)))?;
    let mut url = source.url.clone();
    let mut out = Fetched::default();
    for _ in 0..MAX_PAGES {
        info!(log, "Looking for releases"; "url" => &url);
        let resp = client
            .get(&url)
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .send()
            .await
            .map_err(|e| describe(&url, timeout, &e))?;
        let status = resp.status();
        let next = resp
            .headers()
            .get(reqwest::header::LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(next_link);
        let body = resp.text().await.map_err(|e| {
            if e.is_timeout() {
                describe(&url, timeout, &e)
            } else {
                format!(
                    "failed to read release details from {url}: {}",
                    error_chain(&e)
                )
            }
        })?;
        if is_rate_limited(status.as_u16(), &body) {
            warn!(log, "{}", RATE_LIMIT_WARNING; "url" => &url);
            out.rate_limited = true;
            break;
        }
        if !status.is_success() {
            let excerpt: String = body.chars().take(200).collect();
            return Err(format!(
                "cannot get the release list from {url}: the server answered {status}: {}",
                excerpt.trim()
            ));
        }
        out.releases
            .extend(parse_releases(&body, include_all, source, log)?);
        match next {
            Some(n) => url = n,
            None => break,
        }
    }
    sort_releases(&mut out.releases);
    Ok(out)
}

fn describe(url: &str, timeout: Duration, e: &reqwest::Error) -> String {
    let hint =
        "use --no-network-checks (or KATA_CHECK_NO_NETWORK=1) on hosts without network access";
    if e.is_timeout() {
        format!(
            "cannot get the release list from {url}: no answer within {}s ({hint}, or set {RELEASE_TIMEOUT_ENV})",
            timeout.as_secs_f64()
        )
    } else {
        format!(
            "cannot get the release list from {url}: {} ({hint})",
            error_chain(e)
        )
    }
}

#[cfg(test)]
mod timeout_tests {
    use super::*;

    #[test]
    fn timeouts_parse_or_are_refused_without_panicking() {
        assert_eq!(parse_timeout("1.5"), Ok(Duration::from_millis(1500)));
        for bad in [
            "0",
            "-1",
            "NaN",
            "inf",
            "1e300",
            "99999999999999999999",
            "x",
            "",
        ] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn log() -> Logger {
        Logger::root(slog::Discard, slog::o!())
    }

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn github() -> Source {
        Source {
            url: KATA_RELEASES_URL.into(),
            custom: false,
        }
    }

    fn rel(tag: &str) -> String {
        format!(
            r#"{{"tag_name":"{tag}","prerelease":false,"assets":[{{"name":"kata-static-{tag}-x86_64.tar.xz","browser_download_url":"https://github.com/kata-containers/kata-containers/releases/download/{tag}/kata-static-{tag}-x86_64.tar.xz","created_at":"2023-01-01T00:00:00Z"}}]}}"#
        )
    }

    #[test]
    fn versions_and_urls() {
        assert!(current_version("3.0.0").is_ok());
        assert!(
            current_version("v3.0").unwrap_err().starts_with(
                "BUG: Current version of kata-runtime (v3.0) has invalid SemVer version"
            )
        );
        assert_eq!(release_source(&v("3.0.0"), None).unwrap(), github());
        assert_eq!(
            release_source(&v("1.13.0"), Some("")).unwrap().url,
            RUNTIME_RELEASES_URL
        );
        assert_eq!(
            release_source(&v("0.1.0"), None).unwrap_err(),
            "invalid current version: 0.1.0"
        );
        let s = release_source(&v("3.0.0"), Some("http://127.0.0.1:8080/releases.json")).unwrap();
        assert!(s.custom);
        assert!(
            release_source(&v("3.0.0"), Some("ftp://mirror/x"))
                .unwrap_err()
                .starts_with("Release URL \"ftp://mirror/x\" is not valid")
        );
        assert!(release_source(&v("3.0.0"), Some("not a url")).is_err());
    }

    #[test]
    fn parse_skips_invalid_and_sorts() {
        let body = format!(
            "[{},{},{},{},{},{}]",
            rel("3.1.0"),
            rel("2.5.2"),
            rel("3.2.0-rc0"),
            r#"{"tag_name":"3.0.1","assets":[]}"#,
            r#"{"tag_name":"banana","assets":[{"name":"x","browser_download_url":"https://github.com/kata-containers/kata-containers/releases/download/x","created_at":"d"}]}"#,
            r#"{"tag_name":"3.9.0","assets":[{"name":"x","browser_download_url":"https://evil.example/kata","created_at":"d"}]}"#,
        );
        let r = parse_releases(&body, false, &github(), &log()).unwrap();
        let tags: Vec<String> = r.iter().map(|r| r.version.to_string()).collect();
        assert_eq!(tags, ["2.5.2", "3.1.0"]);
        let all = parse_releases(&body, true, &github(), &log()).unwrap();
        assert_eq!(all.last().unwrap().version, v("3.2.0-rc0"));
        assert!(all.last().unwrap().prerelease);
        assert_eq!(
            r[1].list_line(),
            "3.1.0;2023-01-01T00:00:00Z;https://github.com/kata-containers/kata-containers/releases/download/3.1.0/kata-static-3.1.0-x86_64.tar.xz"
        );
    }

    #[test]
    fn a_mirror_may_serve_its_own_downloads() {
        let body = r#"[{"tag_name":"3.1.0","assets":[{"name":"k","browser_download_url":"http://mirror.local:8080/kata/3.1.0/k.tar.xz","created_at":"d"}]}]"#;
        let mirror = Source {
            url: "http://mirror.local:8080/api/releases".into(),
            custom: true,
        };
        assert_eq!(
            parse_releases(body, false, &mirror, &log()).unwrap().len(),
            1
        );
        assert!(
            parse_releases(body, false, &github(), &log())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn malformed_json_is_an_unpack_error() {
        for body in ["{\"message\":\"x\"}", "not json", "[1,2]", ""] {
            let e = parse_releases(body, false, &github(), &log()).unwrap_err();
            assert!(e.starts_with("failed to unpack release details: "), "{e}");
        }
    }

    #[test]
    fn kinds() {
        assert_eq!(release_kind(&v("3.0.0"), &v("4.0.0")), "major");
        assert_eq!(release_kind(&v("3.0.0"), &v("3.1.0")), "minor");
        assert_eq!(release_kind(&v("3.0.0"), &v("3.0.1")), "patch");
        assert_eq!(
            release_kind(&v("3.0.0"), &v("3.1.0-rc0")),
            "minor pre-release"
        );
        assert_eq!(
            release_kind(&v("3.0.0-alpha0"), &v("3.0.0-rc0")),
            "pre-release"
        );
        // spec Q24
        assert_eq!(release_kind(&v("3.0.0-rc1"), &v("3.0.0")), "final");
    }

    #[test]
    fn verdicts() {
        let cur = v("3.0.0");
        assert_eq!(verdict(&cur, &[]).to_string(), "No releases available");
        let old = parse_releases(&format!("[{}]", rel("2.5.0")), false, &github(), &log()).unwrap();
        assert_eq!(
            verdict(&cur, &old).to_string(),
            "No newer release available"
        );
        let same =
            parse_releases(&format!("[{}]", rel("3.0.0")), false, &github(), &log()).unwrap();
        assert_eq!(verdict(&cur, &same), Verdict::NoNewer);
        let rs = parse_releases(
            &format!("[{},{},{}]", rel("3.0.2"), rel("3.1.0"), rel("2.0.0")),
            false,
            &github(),
            &log(),
        )
        .unwrap();
        assert_eq!(
            verdict(&cur, &rs).to_string(),
            "Newer minor release available: 3.1.0 (url: https://github.com/kata-containers/kata-containers/releases/download/3.1.0/kata-static-3.1.0-x86_64.tar.xz, date: 2023-01-01T00:00:00Z)"
        );
        let newer: Vec<String> = newer_releases(&cur, &rs)
            .iter()
            .map(|r| r.version.to_string())
            .collect();
        assert_eq!(newer, ["3.0.2", "3.1.0"]);
    }

    #[test]
    fn link_and_rate_limit() {
        let h = r#"<https://api.github.com/repositories/1/releases?page=2>; rel="next", <https://api.github.com/repositories/1/releases?page=5>; rel="last""#;
        assert_eq!(
            next_link(h).as_deref(),
            Some("https://api.github.com/repositories/1/releases?page=2")
        );
        assert_eq!(next_link(r#"<https://x/?page=1>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
        assert!(is_rate_limited(
            403,
            r#"{"message":"API rate limit exceeded for 1.2.3.4."}"#
        ));
        assert!(!is_rate_limited(403, "forbidden"));
        assert!(!is_rate_limited(200, "limit exceeded"));
    }

    proptest! {
        #[test]
        fn parse_never_panics(body in "(?s).{0,300}") {
            let _ = parse_releases(&body, true, &github(), &log());
            let _ = next_link(&body);
        }

        #[test]
        fn newer_is_strictly_greater(a in 0u64..5, b in 0u64..5, c in 0u64..5) {
            let cur = v("2.2.2");
            let r = Release { version: Version::new(a, b, c), date: "d".into(), url: "u".into(), prerelease: false };
            let rs = [r];
            let newer = !newer_releases(&cur, &rs).is_empty();
            prop_assert_eq!(newer, (a, b, c) > (2, 2, 2));
        }
    }
}
