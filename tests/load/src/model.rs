//! The load model of one day at 70 million registered users.
//!
//! Every parameter is a field of [`LoadModel`] with its default and the
//! reasoning behind it. None of these is measured from the seed system (its
//! traffic figures are not in the repository); they are assumptions stated
//! so that each can be argued with and changed in one place. The day's
//! totals per [`RequestKind`] come from [`LoadModel::daily`]; the
//! [`DIURNAL_PERCENT`] curve spreads the legitimate traffic over the hours,
//! hostile traffic and background polling are flat.

use std::fmt;

/// Seconds in an hour.
pub const HOUR_SECS: f64 = 3600.0;

/// Average days per month (365 / 12), for monthly bills.
pub const DAYS_PER_MONTH: f64 = 365.0 / 12.0;

/// Share of the day's legitimate traffic in each hour (local time of a
/// single time zone), in percent; the 24 entries sum to 100.
///
/// Shape: a night trough (03:00-04:00 at 0.5%), a steep morning ramp to the
/// peak at 08:00-09:00 (8.3%: commute and start of the working day, when
/// most sessions start with an expired access token), a plateau through the
/// day and a smaller evening shoulder. Peak to mean: 8.3 x 24 / 100 = 1.99.
/// One time zone is the pessimistic case: users spread over several zones
/// flatten the peak.
pub const DIURNAL_PERCENT: [f64; 24] = [
    1.6, 1.0, 0.7, 0.5, 0.5, 0.9, 2.4, 5.6, // 00-07
    8.3, 7.4, 6.4, 5.6, 5.9, 5.4, 5.0, 4.9, // 08-15
    5.1, 5.5, 5.8, 5.6, 5.2, 4.6, 3.6, 2.5, // 16-23
];

/// A kind of request the system serves, as the bill prices it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RequestKind {
    /// Password login that succeeds (issuer `/login`).
    Login,
    /// Legitimate login with a wrong password (typos, forgotten passwords).
    FailedLogin,
    /// Credential-stuffing attempt that gets past the WAF and the attempt
    /// counters, so costs a password check like a real login.
    StuffingChecked,
    /// Credential-stuffing attempt refused by the attempt counters (429)
    /// before any password work.
    StuffingRefused,
    /// Refresh-token rotation (issuer `/refresh`).
    Refresh,
    /// Sign-up (issuer `/register`).
    Register,
    /// Password reset (request and completion; issue 16's routes).
    PasswordReset,
    /// Logout of one session (issuer `/logout`).
    Logout,
    /// A protected API call through API Gateway whose policy was in the
    /// authorizer cache (no authorizer invocation).
    ApiCallCached,
    /// A protected API call that invoked the authorizer (cache miss).
    ApiCallAuthorized,
    /// A protected API call with a malformed, forged or expired token: one
    /// authorizer invocation, 401.
    GarbageToken,
    /// A revocation-feed poll (`/revocations`) by a sidecar.
    FeedPoll,
}

impl RequestKind {
    /// Every kind, in table order.
    pub const ALL: [RequestKind; 12] = [
        RequestKind::Login,
        RequestKind::FailedLogin,
        RequestKind::StuffingChecked,
        RequestKind::StuffingRefused,
        RequestKind::Refresh,
        RequestKind::Register,
        RequestKind::PasswordReset,
        RequestKind::Logout,
        RequestKind::ApiCallCached,
        RequestKind::ApiCallAuthorized,
        RequestKind::GarbageToken,
        RequestKind::FeedPoll,
    ];

    /// Position in [`RequestKind::ALL`].
    #[must_use]
    pub fn index(self) -> usize {
        match self {
            RequestKind::Login => 0,
            RequestKind::FailedLogin => 1,
            RequestKind::StuffingChecked => 2,
            RequestKind::StuffingRefused => 3,
            RequestKind::Refresh => 4,
            RequestKind::Register => 5,
            RequestKind::PasswordReset => 6,
            RequestKind::Logout => 7,
            RequestKind::ApiCallCached => 8,
            RequestKind::ApiCallAuthorized => 9,
            RequestKind::GarbageToken => 10,
            RequestKind::FeedPoll => 11,
        }
    }

    /// A short name for tables.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::Login => "login",
            RequestKind::FailedLogin => "failed login",
            RequestKind::StuffingChecked => "stuffing, checked",
            RequestKind::StuffingRefused => "stuffing, refused",
            RequestKind::Refresh => "refresh",
            RequestKind::Register => "register",
            RequestKind::PasswordReset => "password reset",
            RequestKind::Logout => "logout",
            RequestKind::ApiCallCached => "API call, cached policy",
            RequestKind::ApiCallAuthorized => "API call, authorizer run",
            RequestKind::GarbageToken => "API call, garbage token",
            RequestKind::FeedPoll => "revocation feed poll",
        }
    }

    /// How the traffic of this kind is spread over the day.
    #[must_use]
    pub fn shape(self) -> Shape {
        match self {
            // Bots do not sleep; sidecars poll at a fixed interval.
            RequestKind::StuffingChecked | RequestKind::StuffingRefused | RequestKind::FeedPoll => Shape::Flat,
            _ => Shape::Diurnal,
        }
    }

    /// Whether this is an issuer sign-in as Cognito's UserAuthentication
    /// quota counts it (InitiateAuth: password or refresh-token flows).
    #[must_use]
    pub fn is_sign_in(self) -> bool {
        matches!(
            self,
            RequestKind::Login
                | RequestKind::FailedLogin
                | RequestKind::StuffingChecked
                | RequestKind::StuffingRefused
                | RequestKind::Refresh
        )
    }
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a kind's daily total is spread over the hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Follows [`DIURNAL_PERCENT`].
    Diurnal,
    /// The same every hour.
    Flat,
}

impl Shape {
    /// The share of the day in `hour` (0-23), as a fraction.
    #[must_use]
    pub fn fraction(self, hour: usize) -> f64 {
        match self {
            Shape::Diurnal => DIURNAL_PERCENT[hour % 24] / 100.0,
            Shape::Flat => 1.0 / 24.0,
        }
    }
}

/// The parameters of the day. Defaults: [`LoadModel::default`], each with
/// its reasoning on the field.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadModel {
    /// Registered accounts. Default 70,000,000: the scale the seed system
    /// served (issue 15).
    pub registered_users: f64,
    /// Share of registered accounts active in a month (Cognito's MAU).
    /// Default 0.40: a mature consumer service carries many dormant
    /// accounts; 30-50% monthly activity of the registered base is typical
    /// (assumption, not a measured figure of the seed).
    pub monthly_active_share: f64,
    /// Share of registered accounts active on the day. Default 0.15
    /// (10.5M): DAU/MAU = 0.375, inside the 20-50% band usual for consumer
    /// apps with daily use (assumption).
    pub daily_active_share: f64,
    /// Sessions per active user per day. Default 2.5 (morning, midday,
    /// evening use; assumption).
    pub sessions_per_active_user: f64,
    /// Minutes of activity per session. Default 10 (assumption).
    pub session_minutes: f64,
    /// Protected API calls per session. Default 30, one every 20 s of
    /// activity (assumption).
    pub api_calls_per_session: f64,
    /// Distinct (method, resource) pairs a session calls; API Gateway's
    /// authorizer cache is keyed per token, method and resource. Default 4.
    pub routes_per_session: f64,
    /// API Gateway's authorizer result TTL in seconds. Default 300: the
    /// deploy template's `AuthorizerCacheTtl` default.
    pub authorizer_ttl_secs: f64,
    /// Access-token lifetime in minutes. Default 15 (the issuer's default):
    /// a session needs a refresh per 15 minutes of activity.
    pub access_token_minutes: f64,
    /// Share of sessions that start with a password login; the rest resume
    /// with a stored refresh token (one refresh at the start, since the
    /// access token has expired between sessions). Default 0.08: users stay
    /// signed in on their devices for the refresh token's lifetime, so a
    /// login happens on a new device, after a logout, or after expiry
    /// (assumption).
    pub login_share_of_sessions: f64,
    /// Failed legitimate logins per successful login. Default 0.10 (typos
    /// and forgotten passwords; assumption).
    pub failed_logins_per_login: f64,
    /// Sign-ups per day as a share of the registered base. Default 0.001
    /// (70,000 a day; about 36% gross growth a year; assumption).
    pub registrations_share_per_day: f64,
    /// Password resets per day as a share of daily actives. Default 0.002
    /// (assumption).
    pub password_resets_share_of_dau: f64,
    /// Share of sessions ending in an explicit logout. Default 0.05: most
    /// users never sign out of an app (assumption).
    pub logout_share_of_sessions: f64,
    /// Credential-stuffing login attempts per day. Default 5,000,000: a
    /// large consumer login page under a running campaign sees millions of
    /// attempts a day (order of magnitude from public bot-traffic reports,
    /// e.g. Akamai's State of the Internet; assumption for this service).
    pub stuffing_attempts_per_day: f64,
    /// Share of stuffing attempts refused before any password work (the WAF
    /// rate rule and the per-address counters; botnets rotate addresses, so
    /// most get through to a password check). Default 0.5 (assumption).
    pub stuffing_refused_share: f64,
    /// Share of protected API calls that carry a malformed, forged or
    /// expired token (hostile or buggy clients). Default 0.01 (assumption).
    pub garbage_token_share: f64,
    /// Revocation-feed polls per second, all day: sidecar instances times
    /// their poll rate (`REVOCATION_POLL_INTERVAL` default 1 s). Default 100
    /// (100 sidecars; assumption).
    pub feed_polls_per_second: f64,
    /// The busiest minute's rate over its hour's mean (bursts at the top of
    /// the hour: notifications, scheduled jobs). Default 1.3 (assumption);
    /// capacity is sized to the peak hour times this.
    pub peak_minute_factor: f64,
}

impl Default for LoadModel {
    fn default() -> Self {
        LoadModel {
            registered_users: 70_000_000.0,
            monthly_active_share: 0.40,
            daily_active_share: 0.15,
            sessions_per_active_user: 2.5,
            session_minutes: 10.0,
            api_calls_per_session: 30.0,
            routes_per_session: 4.0,
            authorizer_ttl_secs: 300.0,
            access_token_minutes: 15.0,
            login_share_of_sessions: 0.08,
            failed_logins_per_login: 0.10,
            registrations_share_per_day: 0.001,
            password_resets_share_of_dau: 0.002,
            logout_share_of_sessions: 0.05,
            stuffing_attempts_per_day: 5_000_000.0,
            stuffing_refused_share: 0.5,
            garbage_token_share: 0.01,
            feed_polls_per_second: 100.0,
            peak_minute_factor: 1.3,
        }
    }
}

/// The day's totals per kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Daily {
    /// (kind, requests per day), in [`RequestKind::ALL`] order.
    pub counts: Vec<(RequestKind, f64)>,
}

impl Daily {
    /// Requests per day of `kind`.
    #[must_use]
    pub fn get(&self, kind: RequestKind) -> f64 {
        self.counts.iter().find(|(k, _)| *k == kind).map_or(0.0, |(_, n)| *n)
    }

    /// Requests per second of `kind` in `hour` (0-23), the hour's mean.
    #[must_use]
    pub fn rate(&self, kind: RequestKind, hour: usize) -> f64 {
        self.get(kind) * kind.shape().fraction(hour) / HOUR_SECS
    }

    /// The busiest hour of all traffic together, and its mean rate per
    /// second.
    #[must_use]
    pub fn peak_hour(&self) -> (usize, f64) {
        (0..24)
            .map(|h| (h, RequestKind::ALL.iter().map(|&k| self.rate(k, h)).sum::<f64>()))
            .fold((0, 0.0), |best, cur| if cur.1 > best.1 { cur } else { best })
    }

    /// The highest hourly mean rate of `kind` over the day.
    #[must_use]
    pub fn peak_rate(&self, kind: RequestKind) -> f64 {
        (0..24).map(|h| self.rate(kind, h)).fold(0.0, f64::max)
    }

    /// All requests of the day.
    #[must_use]
    pub fn total(&self) -> f64 {
        self.counts.iter().map(|(_, n)| n).sum()
    }
}

impl LoadModel {
    /// Every parameter as (name, value, reasoning) for reports; the doc
    /// comments on the fields say the same at more length.
    #[must_use]
    pub fn parameters(&self) -> Vec<(&'static str, f64, &'static str)> {
        vec![
            ("registered users", self.registered_users, "the scale the seed system served (issue 15)"),
            (
                "monthly active share",
                self.monthly_active_share,
                "mature consumer base with dormant accounts: 30-50% typical (assumption)",
            ),
            ("daily active share", self.daily_active_share, "DAU/MAU 0.375, inside the usual 20-50% (assumption)"),
            (
                "sessions per active user per day",
                self.sessions_per_active_user,
                "morning, midday, evening (assumption)",
            ),
            ("minutes per session", self.session_minutes, "assumption"),
            ("API calls per session", self.api_calls_per_session, "one per 20 s of activity (assumption)"),
            (
                "distinct routes per session",
                self.routes_per_session,
                "authorizer cache key: token, method, resource (assumption)",
            ),
            ("authorizer cache TTL, s", self.authorizer_ttl_secs, "template AuthorizerCacheTtl default"),
            ("access-token lifetime, min", self.access_token_minutes, "issuer default ISSUER_ACCESS_TTL_SECS=900"),
            (
                "share of sessions starting with a password login",
                self.login_share_of_sessions,
                "the rest resume with the 30-day refresh token (assumption)",
            ),
            (
                "failed logins per successful login",
                self.failed_logins_per_login,
                "typos, forgotten passwords (assumption)",
            ),
            (
                "sign-ups per day, share of registered",
                self.registrations_share_per_day,
                "about 36% gross growth a year (assumption)",
            ),
            ("password resets per day, share of DAU", self.password_resets_share_of_dau, "assumption"),
            (
                "share of sessions ending in a logout",
                self.logout_share_of_sessions,
                "most users never sign out of an app (assumption)",
            ),
            (
                "credential-stuffing attempts per day",
                self.stuffing_attempts_per_day,
                "a campaign against a large login page: millions a day (order of magnitude from public bot-traffic reports; assumption)",
            ),
            (
                "share of stuffing refused before any hash",
                self.stuffing_refused_share,
                "WAF rate rule and per-address counters; botnets rotate addresses (assumption)",
            ),
            (
                "share of API calls with a garbage token",
                self.garbage_token_share,
                "hostile or buggy clients (assumption)",
            ),
            (
                "revocation-feed polls per second",
                self.feed_polls_per_second,
                "100 sidecars at REVOCATION_POLL_INTERVAL=1s (assumption)",
            ),
            (
                "busiest minute over its hour's mean",
                self.peak_minute_factor,
                "top-of-hour bursts; capacity is sized to it (assumption)",
            ),
        ]
    }

    /// Daily active users.
    #[must_use]
    pub fn daily_active(&self) -> f64 {
        self.registered_users * self.daily_active_share
    }

    /// Monthly active users.
    #[must_use]
    pub fn monthly_active(&self) -> f64 {
        self.registered_users * self.monthly_active_share
    }

    /// Sessions per day.
    #[must_use]
    pub fn sessions(&self) -> f64 {
        self.daily_active() * self.sessions_per_active_user
    }

    /// Refreshes per session: one at the start of each resumed session, plus
    /// one per access-token lifetime of activity (in expectation: a session
    /// of `m` minutes crosses `m / lifetime` expiries).
    #[must_use]
    pub fn refreshes_per_session(&self) -> f64 {
        (1.0 - self.login_share_of_sessions) + self.session_minutes / self.access_token_minutes
    }

    /// Authorizer invocations per session: one per route per cache period
    /// (`ceil(session seconds / TTL)`, at least one), never more than the
    /// calls made. A refresh mid-session changes the token, hence the cache
    /// key; with sessions shorter than the token's lifetime this is small
    /// and not counted.
    #[must_use]
    pub fn authorizer_runs_per_session(&self) -> f64 {
        let periods = if self.authorizer_ttl_secs <= 0.0 {
            f64::INFINITY
        } else {
            (self.session_minutes * 60.0 / self.authorizer_ttl_secs).ceil().max(1.0)
        };
        (self.routes_per_session * periods).min(self.api_calls_per_session)
    }

    /// The day's totals per request kind.
    #[must_use]
    pub fn daily(&self) -> Daily {
        let sessions = self.sessions();
        let logins = sessions * self.login_share_of_sessions;
        let legit_calls = sessions * self.api_calls_per_session;
        let authorized = sessions * self.authorizer_runs_per_session();
        // Garbage-token calls come on top of the legitimate calls.
        let garbage = legit_calls * self.garbage_token_share / (1.0 - self.garbage_token_share);
        let counts = RequestKind::ALL
            .iter()
            .map(|&k| {
                let n = match k {
                    RequestKind::Login => logins,
                    RequestKind::FailedLogin => logins * self.failed_logins_per_login,
                    RequestKind::StuffingChecked => {
                        self.stuffing_attempts_per_day * (1.0 - self.stuffing_refused_share)
                    }
                    RequestKind::StuffingRefused => self.stuffing_attempts_per_day * self.stuffing_refused_share,
                    RequestKind::Refresh => sessions * self.refreshes_per_session(),
                    RequestKind::Register => self.registered_users * self.registrations_share_per_day,
                    RequestKind::PasswordReset => self.daily_active() * self.password_resets_share_of_dau,
                    RequestKind::Logout => sessions * self.logout_share_of_sessions,
                    RequestKind::ApiCallCached => legit_calls - authorized,
                    RequestKind::ApiCallAuthorized => authorized,
                    RequestKind::GarbageToken => garbage,
                    RequestKind::FeedPoll => self.feed_polls_per_second * 86_400.0,
                };
                (k, n)
            })
            .collect();
        Daily { counts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn the_diurnal_curve_sums_to_the_day_and_peaks_in_the_morning() {
        let sum: f64 = DIURNAL_PERCENT.iter().sum();
        assert!(close(sum, 100.0), "{sum}");
        let (peak_hour, peak) =
            DIURNAL_PERCENT.iter().enumerate().fold((0, 0.0), |b, (h, &p)| if p > b.1 { (h, p) } else { b });
        assert_eq!(peak_hour, 8);
        // The ratio stated on DIURNAL_PERCENT.
        assert!(close(peak * 24.0 / 100.0, 1.992));
    }

    #[test]
    fn hourly_rates_add_up_to_each_daily_total() {
        let daily = LoadModel::default().daily();
        for &k in &RequestKind::ALL {
            let from_hours: f64 = (0..24).map(|h| daily.rate(k, h) * HOUR_SECS).sum();
            assert!(close(from_hours, daily.get(k)), "{k}: {from_hours} vs {}", daily.get(k));
        }
    }

    #[test]
    fn a_small_hand_checked_day() {
        let m = LoadModel {
            registered_users: 1000.0,
            monthly_active_share: 0.5,
            daily_active_share: 0.1,
            sessions_per_active_user: 2.0,
            session_minutes: 30.0,
            api_calls_per_session: 10.0,
            routes_per_session: 2.0,
            authorizer_ttl_secs: 600.0,
            access_token_minutes: 15.0,
            login_share_of_sessions: 0.5,
            failed_logins_per_login: 0.2,
            registrations_share_per_day: 0.01,
            password_resets_share_of_dau: 0.1,
            logout_share_of_sessions: 0.25,
            stuffing_attempts_per_day: 480.0,
            stuffing_refused_share: 0.25,
            garbage_token_share: 0.2,
            feed_polls_per_second: 0.5,
            peak_minute_factor: 1.0,
        };
        let d = m.daily();
        // 1000 x 0.1 = 100 active; x 2 = 200 sessions.
        assert!(close(m.sessions(), 200.0));
        assert!(close(m.monthly_active(), 500.0));
        // 200 x 0.5 = 100 logins; 100 x 0.2 = 20 failed.
        assert!(close(d.get(RequestKind::Login), 100.0));
        assert!(close(d.get(RequestKind::FailedLogin), 20.0));
        // Refreshes per session: (1 - 0.5) resumed + 30 / 15 = 2.5; x 200 = 500.
        assert!(close(d.get(RequestKind::Refresh), 500.0));
        // Authorizer: 2 routes x ceil(1800 s / 600 s) = 6 per session; x 200 = 1200.
        assert!(close(d.get(RequestKind::ApiCallAuthorized), 1200.0));
        // Calls: 200 x 10 = 2000, of which 1200 ran the authorizer: 800 cached.
        assert!(close(d.get(RequestKind::ApiCallCached), 800.0));
        // Garbage is 20% of all calls: 2000 x 0.2 / 0.8 = 500 (500 / 2500 = 0.2).
        assert!(close(d.get(RequestKind::GarbageToken), 500.0));
        assert!(close(d.get(RequestKind::Register), 10.0));
        assert!(close(d.get(RequestKind::PasswordReset), 10.0));
        assert!(close(d.get(RequestKind::Logout), 50.0));
        // Stuffing 480: 360 checked, 120 refused; flat: 480 / 24 = 20 an hour.
        assert!(close(d.get(RequestKind::StuffingChecked), 360.0));
        assert!(close(d.get(RequestKind::StuffingRefused), 120.0));
        assert!(close(d.rate(RequestKind::StuffingChecked, 3) * HOUR_SECS, 15.0));
        // Feed: 0.5/s x 86400 = 43200 a day, 0.5/s every hour.
        assert!(close(d.rate(RequestKind::FeedPoll, 17), 0.5));
        // Logins at 08:00: 100 x 8.3% = 8.3 in the hour, 8.3 / 3600 per second.
        assert!(close(d.rate(RequestKind::Login, 8), 8.3 / 3600.0));
        assert!(close(d.peak_rate(RequestKind::Login), 8.3 / 3600.0));
        assert_eq!(d.peak_hour().0, 8);
    }

    #[test]
    fn index_is_the_position_in_all() {
        for (i, k) in RequestKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i, "{k}");
        }
    }

    #[test]
    fn authorizer_runs_never_exceed_the_calls() {
        let m = LoadModel { authorizer_ttl_secs: 0.0, ..LoadModel::default() };
        assert!(close(m.authorizer_runs_per_session(), m.api_calls_per_session));
        let d = m.daily();
        assert_eq!(d.get(RequestKind::ApiCallCached), 0.0);
    }
}
