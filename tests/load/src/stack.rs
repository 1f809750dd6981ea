//! The dev stack as `auth-load` drives it: users seeded by registering and
//! logging in, and one request builder per route.
//!
//! Routes: password login and refresh on the issuer; a protected API call
//! through the front door (which runs the authorizer) and through the
//! sidecar's `/verify`; and two hostile ones, a login for an unknown account
//! (credential stuffing, 401) and an API call with a garbage token (401).
//! Passwords and tokens never appear in errors or output.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, SET_COOKIE};

use crate::load::Outcome;
use crate::model::{Daily, RequestKind};

/// The issuer's refresh cookie.
pub const REFRESH_COOKIE: &str = "__Secure-refresh_token";

/// A route the generator plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `POST {issuer}/login`, a seeded user: 200.
    Login,
    /// `POST {issuer}/refresh` with the user's refresh cookie: 200.
    Refresh,
    /// `GET {gateway}/pets` with the user's access token: 200.
    Gateway,
    /// `GET {sidecar}/verify` with the user's access token: 200.
    Sidecar,
    /// `POST {issuer}/login` for an account that does not exist: 401.
    Stuffing,
    /// `GET {gateway}/pets` with a garbage bearer token: 401.
    Garbage,
}

impl Route {
    /// Every route, in report order.
    pub const ALL: [Route; 6] =
        [Route::Login, Route::Refresh, Route::Gateway, Route::Sidecar, Route::Stuffing, Route::Garbage];

    /// Its name on the command line and in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Route::Login => "login",
            Route::Refresh => "refresh",
            Route::Gateway => "gateway",
            Route::Sidecar => "sidecar",
            Route::Stuffing => "stuffing",
            Route::Garbage => "garbage",
        }
    }

    /// The route named `name`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Route> {
        Route::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The answer that counts as success.
    #[must_use]
    pub fn expected_status(self) -> u16 {
        match self {
            Route::Login | Route::Refresh | Route::Gateway | Route::Sidecar => 200,
            Route::Stuffing | Route::Garbage => 401,
        }
    }
}

/// The request kinds the generator plays. Not played yet: sign-ups,
/// password resets and logouts (they change the user set the run works on),
/// and feed polls (the sidecar's own background traffic).
pub const PLAYED: [RequestKind; 8] = [
    RequestKind::Login,
    RequestKind::FailedLogin,
    RequestKind::Refresh,
    RequestKind::ApiCallCached,
    RequestKind::ApiCallAuthorized,
    RequestKind::StuffingChecked,
    RequestKind::StuffingRefused,
    RequestKind::GarbageToken,
];

/// The routes' weights in the model's day: logins (failed ones included) and
/// refreshes as counted, API calls (cached or not) split evenly between the
/// front door and the sidecar, all stuffing attempts, garbage tokens (the
/// [`PLAYED`] kinds).
#[must_use]
pub fn model_weights(daily: &Daily) -> Vec<(Route, f64)> {
    let api = daily.get(RequestKind::ApiCallCached) + daily.get(RequestKind::ApiCallAuthorized);
    vec![
        (Route::Login, daily.get(RequestKind::Login) + daily.get(RequestKind::FailedLogin)),
        (Route::Refresh, daily.get(RequestKind::Refresh)),
        (Route::Gateway, api / 2.0),
        (Route::Sidecar, api / 2.0),
        (Route::Stuffing, daily.get(RequestKind::StuffingChecked) + daily.get(RequestKind::StuffingRefused)),
        (Route::Garbage, daily.get(RequestKind::GarbageToken)),
    ]
}

/// The routes' weights in one hour of the model's day: the same mapping as
/// [`model_weights`] with the hour's rates, so flat hostile traffic weighs
/// more at night.
#[must_use]
pub fn model_weights_at(daily: &Daily, hour: usize) -> Vec<(Route, f64)> {
    let r = |k| daily.rate(k, hour);
    let api = r(RequestKind::ApiCallCached) + r(RequestKind::ApiCallAuthorized);
    vec![
        (Route::Login, r(RequestKind::Login) + r(RequestKind::FailedLogin)),
        (Route::Refresh, r(RequestKind::Refresh)),
        (Route::Gateway, api / 2.0),
        (Route::Sidecar, api / 2.0),
        (Route::Stuffing, r(RequestKind::StuffingChecked) + r(RequestKind::StuffingRefused)),
        (Route::Garbage, r(RequestKind::GarbageToken)),
    ]
}

/// The requests per second of the [`PLAYED`] kinds in `hour`, at 1:`scale`.
#[must_use]
pub fn model_rate(daily: &Daily, hour: usize, scale: f64) -> f64 {
    PLAYED.iter().map(|&k| daily.rate(k, hour)).sum::<f64>() / scale
}

/// Where the stack listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    /// Issuer base URL.
    pub issuer: String,
    /// Front door base URL, if the gateway and garbage routes are played.
    pub gateway: Option<String>,
    /// Sidecar base URL, if the sidecar route is played.
    pub sidecar: Option<String>,
}

/// A failure while seeding users.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// `/register` answered neither 201 nor 202.
    #[error(
        "register user {user}: status {status} (start the issuer with ISSUER_REQUIRE_VERIFIED_EMAIL=false and lifted limits)"
    )]
    Register {
        /// Index of the user.
        user: usize,
        /// Status.
        status: u16,
    },
    /// `/login` of a seeded user failed.
    #[error(
        "log in user {user}: status {status} (a 202 registration needs ISSUER_REQUIRE_VERIFIED_EMAIL=false; 429: lift the login limits)"
    )]
    Login {
        /// Index of the user.
        user: usize,
        /// Status.
        status: u16,
    },
    /// The login answer had no access token or refresh cookie.
    #[error("log in user {user}: {what} missing from the answer")]
    Answer {
        /// Index of the user.
        user: usize,
        /// What was missing.
        what: &'static str,
    },
    /// Transport failure (connection refused, timeout).
    #[error("{what}: {reason}")]
    Http {
        /// Which call.
        what: String,
        /// reqwest's description (carries no credentials: bodies are not quoted).
        reason: String,
    },
}

#[derive(Debug, Default)]
struct Session {
    access: Option<String>,
    refresh: Option<String>,
}

#[derive(Debug)]
struct User {
    email: String,
    password: String,
    session: Mutex<Session>,
}

/// The stack client: one HTTP client (with a timeout), the seeded users.
#[derive(Debug, Clone)]
pub struct Stack {
    http: reqwest::Client,
    targets: Arc<Targets>,
    users: Arc<Vec<User>>,
}

fn lock(m: &Mutex<Session>) -> std::sync::MutexGuard<'_, Session> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The refresh token from the answer's `Set-Cookie` headers.
#[must_use]
pub fn refresh_cookie(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers.get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|c| {
        let first = c.split(';').next()?.trim();
        let (name, value) = first.split_once('=')?;
        (name == REFRESH_COOKIE && !value.is_empty()).then(|| value.to_owned())
    })
}

fn transport(what: impl Into<String>, e: &reqwest::Error) -> SeedError {
    SeedError::Http { what: what.into(), reason: if e.is_timeout() { "timed out".to_owned() } else { e.to_string() } }
}

fn outcome_of(e: &reqwest::Error) -> Outcome {
    if e.is_timeout() {
        Outcome::Timeout
    } else if e.is_connect() {
        Outcome::Failed("connect error".to_owned())
    } else {
        Outcome::Failed("transport error".to_owned())
    }
}

impl Stack {
    /// A client for `targets` with `users` accounts named after `run_id`;
    /// every call times out after `timeout`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(targets: Targets, users: usize, run_id: &str, timeout: Duration) -> Result<Stack, SeedError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(256)
            .build()
            .map_err(|e| transport("building the HTTP client", &e))?;
        let users = (0..users)
            .map(|u| User {
                email: format!("load-{run_id}-{u}@example.com"),
                // Long and unguessable enough for the strength check; the
                // same for every user of a run.
                password: format!("quartz meadow lantern {run_id} orbit"),
                session: Mutex::new(Session::default()),
            })
            .collect();
        Ok(Stack { http, targets: Arc::new(targets), users: Arc::new(users) })
    }

    /// Users seeded.
    #[must_use]
    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// Registers every user (201 or 202 accepted) and logs each in, at most
    /// `parallel` at a time.
    ///
    /// # Errors
    /// The first [`SeedError`].
    pub async fn seed(&self, parallel: usize) -> Result<(), SeedError> {
        let mut set = tokio::task::JoinSet::new();
        let mut next = 0;
        let mut first_error = None;
        while next < self.users.len() || !set.is_empty() {
            while next < self.users.len() && set.len() < parallel.max(1) {
                let me = self.clone();
                let u = next;
                set.spawn(async move { me.seed_one(u).await });
                next += 1;
            }
            if let Some(joined) = set.join_next().await {
                let r = joined.unwrap_or_else(|e| {
                    Err(SeedError::Http { what: "seeding task".to_owned(), reason: e.to_string() })
                });
                if let Err(e) = r {
                    first_error.get_or_insert(e);
                    next = self.users.len(); // stop starting more
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn seed_one(&self, u: usize) -> Result<(), SeedError> {
        let user = &self.users[u];
        let body = serde_json::json!({"email": user.email, "password": user.password}).to_string();
        let r = self
            .http
            .post(format!("{}/register", self.targets.issuer))
            .header(CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await
            .map_err(|e| transport(format!("register user {u}"), &e))?;
        let status = r.status().as_u16();
        if status != 201 && status != 202 {
            return Err(SeedError::Register { user: u, status });
        }
        let r = self
            .http
            .post(format!("{}/login", self.targets.issuer))
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| transport(format!("log in user {u}"), &e))?;
        if r.status().as_u16() != 200 {
            return Err(SeedError::Login { user: u, status: r.status().as_u16() });
        }
        let refresh = refresh_cookie(r.headers()).ok_or(SeedError::Answer { user: u, what: "refresh cookie" })?;
        let v: serde_json::Value = r.json().await.map_err(|e| transport(format!("log in user {u}"), &e))?;
        let access = v["access_token"].as_str().ok_or(SeedError::Answer { user: u, what: "access_token" })?;
        let mut s = lock(&user.session);
        s.access = Some(access.to_owned());
        s.refresh = Some(refresh);
        Ok(())
    }

    /// The request of `route` for scheduled request `i` (user `i mod users`).
    pub fn request(&self, route: Route, i: u64) -> impl Future<Output = Outcome> + Send + 'static {
        let me = self.clone();
        async move { me.play(route, i).await }
    }

    async fn play(&self, route: Route, i: u64) -> Outcome {
        let n = self.users.len().max(1);
        let u = usize::try_from(i % n as u64).unwrap_or(0);
        let expect = route.expected_status();
        let issuer = &self.targets.issuer;
        let req = match route {
            Route::Login | Route::Stuffing => {
                let Some(user) = self.users.get(u) else { return Outcome::Skipped("no users") };
                let email = if route == Route::Login { user.email.clone() } else { format!("nobody-{i}@example.com") };
                let body = serde_json::json!({"email": email, "password": user.password}).to_string();
                self.http.post(format!("{issuer}/login")).header(CONTENT_TYPE, "application/json").body(body)
            }
            Route::Refresh => {
                let Some(user) = self.users.get(u) else { return Outcome::Skipped("no users") };
                // Taken, not copied: a token is rotated by one request at a
                // time (two would trip reuse detection and revoke the family).
                // A refresh that fails leaves the user without one (after a
                // timeout the server may have rotated it: sending it again
                // would be reuse) until the user's next login.
                let Some(token) = lock(&user.session).refresh.take() else {
                    return Outcome::Skipped("refresh token in use");
                };
                self.http
                    .post(format!("{issuer}/refresh"))
                    .header(COOKIE, format!("{REFRESH_COOKIE}={token}"))
                    .header("x-requested-with", "auth-load")
            }
            Route::Gateway | Route::Sidecar | Route::Garbage => {
                let base = if route == Route::Sidecar { &self.targets.sidecar } else { &self.targets.gateway };
                let Some(base) = base else { return Outcome::Skipped("no target for this route") };
                let path = if route == Route::Sidecar { "/verify" } else { "/pets" };
                let token = if route == Route::Garbage {
                    format!("garbage.{i}.token")
                } else {
                    let Some(t) = self.users.get(u).and_then(|user| lock(&user.session).access.clone()) else {
                        return Outcome::Skipped("no access token");
                    };
                    t
                };
                self.http.get(format!("{base}{path}")).header(AUTHORIZATION, format!("Bearer {token}"))
            }
        };
        let r = match req.send().await {
            Ok(r) => r,
            Err(e) => return outcome_of(&e),
        };
        let status = r.status().as_u16();
        if matches!(route, Route::Login | Route::Refresh) && status == 200 {
            let refresh = refresh_cookie(r.headers());
            let access = match r.json::<serde_json::Value>().await {
                Ok(v) => v["access_token"].as_str().map(str::to_owned),
                Err(e) => return outcome_of(&e),
            };
            if let Some(user) = self.users.get(u) {
                let mut s = lock(&user.session);
                if let Some(rt) = refresh {
                    s.refresh = Some(rt);
                }
                if let Some(at) = access {
                    s.access = Some(at);
                }
            }
        }
        if status == expect { Outcome::Ok } else { Outcome::Status(status) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LoadModel;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn the_refresh_cookie_is_read_from_set_cookie() {
        let mut h = HeaderMap::new();
        h.append(SET_COOKIE, HeaderValue::from_static("other=1; Path=/"));
        h.append(
            SET_COOKIE,
            HeaderValue::from_static("__Secure-refresh_token=abc123; Path=/refresh; HttpOnly; Secure"),
        );
        h.append(SET_COOKIE, HeaderValue::from_static("__Secure-refresh_token=abc123; Path=/logout; HttpOnly; Secure"));
        assert_eq!(refresh_cookie(&h).as_deref(), Some("abc123"));
        let mut cleared = HeaderMap::new();
        cleared.append(SET_COOKIE, HeaderValue::from_static("__Secure-refresh_token=; Max-Age=0"));
        assert_eq!(refresh_cookie(&cleared), None);
    }

    #[test]
    fn routes_by_name_and_expected_answers() {
        for r in Route::ALL {
            assert_eq!(Route::from_name(r.name()), Some(r));
        }
        assert_eq!(Route::from_name("nope"), None);
        assert_eq!(Route::Garbage.expected_status(), 401);
        assert_eq!(Route::Stuffing.expected_status(), 401);
        assert_eq!(Route::Refresh.expected_status(), 200);
    }

    #[test]
    fn the_model_mix_and_rate() {
        let daily = LoadModel::default().daily();
        let w = model_weights(&daily);
        let total: f64 = w.iter().map(|(_, x)| x).sum();
        // Everything but feed polls, sign-ups, resets and logouts is played:
        // 854,458,045 - 8,640,000 - 70,000 - 21,000 - 1,312,500 a day.
        let played = 854_458_045.0 - 8_640_000.0 - 70_000.0 - 21_000.0 - 1_312_500.0;
        assert!((total - played).abs() < 1.0, "{total} {played}");
        // At 08:00 at 1:10,000: the hour's share (8.3%) of the played diurnal
        // kinds plus the flat stuffing (5M / 24 h), per second, / 10,000.
        let diurnal = played - 5_000_000.0;
        let expect = (diurnal * 0.083 + 5_000_000.0 / 24.0) / 3600.0 / 10_000.0;
        let r = model_rate(&daily, 8, 10_000.0);
        assert!((r - expect).abs() < 1e-6, "{r} {expect}");
        assert!((1.9..2.0).contains(&r), "{r}");
        // The hour's weights add up to the hour's played rate; stuffing is
        // flat, so its share is larger at 03:00 than at 08:00.
        let at8: f64 = model_weights_at(&daily, 8).iter().map(|(_, w)| w).sum();
        assert!((at8 / 10_000.0 - r).abs() < 1e-9);
        let share = |h| {
            let w = model_weights_at(&daily, h);
            let total: f64 = w.iter().map(|(_, x)| x).sum();
            w.iter().find(|(route, _)| *route == Route::Stuffing).map_or(0.0, |(_, x)| x / total)
        };
        assert!(share(3) > 5.0 * share(8), "{} {}", share(3), share(8));
    }
}
