//! Mail: one interface ([`MailTransport`], shared as [`Mailer`]), two
//! implementations, and the messages the issuer sends.
//!
//! - Amazon SES (SESv2 `SendEmail` through the AWS SDK) on AWS.
//! - A local outbox: each message a JSON file in `<data dir>/outbox`,
//!   listed by the dev stack so a walkthrough can follow a link.
//!
//! Messages are composed by [`compose`] from fixed templates (plain text and
//! HTML) with the product name and link base from configuration. Nothing a
//! client typed is put into a message except the recipient address, which
//! is HTML-escaped; tokens are URL-encoded into links.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// What a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageKind {
    /// A new registration: the link that verifies the address.
    VerifyEmail,
    /// Someone tried to register an address that has an account.
    SignupAttempt,
    /// A password reset link.
    PasswordReset,
    /// Someone asked to reset the password of an address without an account.
    ResetUnknownAddress,
    /// The password of the account was changed or reset.
    PasswordChanged,
}

impl MessageKind {
    /// A stable name (logs, the outbox).
    pub fn name(self) -> &'static str {
        match self {
            MessageKind::VerifyEmail => "verify_email",
            MessageKind::SignupAttempt => "signup_attempt",
            MessageKind::PasswordReset => "password_reset",
            MessageKind::ResetUnknownAddress => "reset_unknown_address",
            MessageKind::PasswordChanged => "password_changed",
        }
    }
}

/// The configured branding of messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branding {
    /// The product name shown in subjects and bodies (`ISSUER_PRODUCT_NAME`).
    pub product: String,
    /// Base URL of the pages the links open (`ISSUER_LINK_BASE`), no
    /// trailing slash: `<base>/verify-email?token=...`,
    /// `<base>/reset-password?token=...`.
    pub link_base: String,
}

/// A composed message. `Debug` shows the recipient and kind only: bodies
/// carry single-use tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// The recipient (a normalised address).
    pub to: String,
    /// What it is for.
    pub kind: MessageKind,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message").field("to", &self.to).field("kind", &self.kind).finish_non_exhaustive()
    }
}

/// The link a message of `kind` carries for `token`, if any.
pub fn link(kind: MessageKind, branding: &Branding, token: &str) -> Option<String> {
    let page = match kind {
        MessageKind::VerifyEmail => "verify-email",
        MessageKind::PasswordReset => "reset-password",
        _ => return None,
    };
    let token: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    Some(format!("{}/{page}?token={token}", branding.link_base))
}

/// Composes the message of `kind` to `to`; `token` is the single-use token
/// of a [`MessageKind::VerifyEmail`] or [`MessageKind::PasswordReset`]
/// link (ignored by the other kinds).
pub fn compose(kind: MessageKind, to: &str, branding: &Branding, token: Option<&str>) -> Message {
    let product = &branding.product;
    let link = token.and_then(|t| link(kind, branding, t));
    let (subject, lines): (String, Vec<String>) = match kind {
        MessageKind::VerifyEmail => (
            format!("Verify your email address for {product}"),
            vec![
                format!("Open this link to finish creating your {product} account:"),
                link.clone().unwrap_or_default(),
                "If you did not sign up, ignore this message.".to_owned(),
            ],
        ),
        MessageKind::SignupAttempt => (
            format!("Someone tried to sign up for {product} with your address"),
            vec![
                format!("Your address already has a {product} account, so nothing was created."),
                "If it was you, log in, or reset your password if you forgot it.".to_owned(),
            ],
        ),
        MessageKind::PasswordReset => (
            format!("Reset your {product} password"),
            vec![
                "Open this link to choose a new password:".to_owned(),
                link.clone().unwrap_or_default(),
                "If you did not ask for this, ignore this message: your password stays as it is.".to_owned(),
            ],
        ),
        MessageKind::ResetUnknownAddress => (
            format!("Password reset request for {product}"),
            vec![format!(
                "Someone asked to reset the {product} password of this address, but it has no account. If it was you, try the address you signed up with."
            )],
        ),
        MessageKind::PasswordChanged => (
            format!("Your {product} password was changed"),
            vec![
                "Your password was changed and every session was signed out.".to_owned(),
                "If this was not you, reset your password now.".to_owned(),
            ],
        ),
    };
    let text = lines.join("\n\n");
    let html = lines
        .iter()
        .map(|l| match &link {
            // The link line is a link: its URL (base from configuration,
            // token URL-encoded) escaped for an attribute and for text.
            Some(url) if l == url => {
                let url = html_escape::encode_double_quoted_attribute(url);
                format!("<p><a href=\"{url}\">{url}</a></p>")
            }
            _ => format!("<p>{}</p>", html_escape::encode_safe(l)),
        })
        .collect::<Vec<_>>()
        .join("\n");
    Message { to: to.to_owned(), kind, subject, text, html }
}

/// A message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// The provider refused this message (bad recipient, sender not
    /// verified, account paused). Names the cause, never the body.
    #[error("mail refused: {0}")]
    Rejected(String),
    /// The provider could not be reached or failed (timeout, throttling,
    /// I/O). The message may or may not have gone out.
    #[error("mail unavailable: {0}")]
    Unavailable(String),
}

/// A boxed future of a send.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), MailError>> + Send + 'a>>;

/// Sends composed messages.
pub trait MailTransport: Send + Sync + 'static {
    /// Sends `msg`, within the transport's timeout.
    fn send<'a>(&'a self, msg: &'a Message) -> SendFuture<'a>;
    /// The transport's name (logs): `ses`, `outbox`.
    fn name(&self) -> &'static str;
}

/// A shared mail transport.
#[derive(Clone)]
pub struct Mailer(Arc<dyn MailTransport>);

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Mailer").field(&self.0.name()).finish()
    }
}

impl Mailer {
    /// A mailer over `transport`.
    pub fn new(transport: impl MailTransport) -> Self {
        Mailer(Arc::new(transport))
    }

    /// Sends `msg`.
    ///
    /// # Errors
    /// The transport's [`MailError`].
    pub async fn send(&self, msg: &Message) -> Result<(), MailError> {
        self.0.send(msg).await
    }

    /// The transport's name.
    pub fn transport_name(&self) -> &'static str {
        self.0.name()
    }
}

/// The transport of an issuer with none configured: every send fails with
/// [`MailError::Unavailable`], so the routes that mail answer 503 instead
/// of pretending.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMail;

impl MailTransport for NoMail {
    fn send<'a>(&'a self, _msg: &'a Message) -> SendFuture<'a> {
        Box::pin(async { Err(MailError::Unavailable("no mail transport configured".to_owned())) })
    }

    fn name(&self) -> &'static str {
        "none"
    }
}

/// Largest number of messages the outbox keeps; the oldest go first.
pub const OUTBOX_MAX: usize = 1000;

/// One message in the outbox, as written and listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutboxEntry {
    /// The file name without `.json`: sortable by time.
    pub id: String,
    /// When it was written (ms since the epoch).
    pub time_ms: u64,
    /// The recipient.
    pub to: String,
    /// [`MessageKind::name`].
    pub kind: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
    /// The links in the text body.
    pub links: Vec<String>,
}

impl OutboxEntry {
    /// The message again (tests, tools).
    pub fn into_message(self) -> Message {
        let kind = [
            MessageKind::VerifyEmail,
            MessageKind::SignupAttempt,
            MessageKind::PasswordReset,
            MessageKind::ResetUnknownAddress,
            MessageKind::PasswordChanged,
        ]
        .into_iter()
        .find(|k| k.name() == self.kind)
        .unwrap_or(MessageKind::SignupAttempt);
        Message { to: self.to, kind, subject: self.subject, text: self.text, html: self.html }
    }
}

/// The local outbox: each message one whole JSON file (written to a
/// temporary name, then renamed) in a 0700 directory, at most
/// [`OUTBOX_MAX`] files (the oldest are deleted).
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: Arc<std::path::PathBuf>,
    max: usize,
    seq: Arc<std::sync::atomic::AtomicU64>,
}

impl Outbox {
    /// The outbox in `dir` (created 0700 if needed).
    ///
    /// # Errors
    /// If the directory cannot be created.
    pub fn open(dir: &std::path::Path) -> std::io::Result<Self> {
        crate::keys::create_private_dir(dir)?;
        Ok(Outbox { dir: Arc::new(dir.to_owned()), max: OUTBOX_MAX, seq: Arc::default() })
    }

    /// Keeps at most `max` messages (at least 1).
    #[must_use]
    pub fn with_max(mut self, max: usize) -> Self {
        self.max = max.max(1);
        self
    }

    /// The directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The newest `limit` messages, newest first.
    ///
    /// # Errors
    /// [`MailError::Unavailable`] if the directory cannot be read.
    pub async fn list(&self, limit: usize) -> Result<Vec<OutboxEntry>, MailError> {
        let dir = Arc::clone(&self.dir);
        tokio::task::spawn_blocking(move || {
            let mut names = message_files(&dir)?;
            names.sort_unstable_by(|a, b| b.cmp(a));
            let mut out = Vec::new();
            for name in names.into_iter().take(limit) {
                // A file deleted by the bound meanwhile is skipped.
                let Ok(bytes) = std::fs::read(dir.join(&name)) else { continue };
                if let Ok(entry) = serde_json::from_slice::<OutboxEntry>(&bytes) {
                    out.push(entry);
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| MailError::Unavailable(format!("outbox task failed: {e}")))?
    }

    fn write(&self, msg: &Message) -> Result<(), MailError> {
        use std::io::Write as _;
        let io = |e: std::io::Error| MailError::Unavailable(format!("outbox: {}", e.kind()));
        let time_ms = u64::try_from(token_core::unix_now().as_millis()).unwrap_or(u64::MAX);
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let rand = crate::tokens::random_bytes::<4>().map_err(|_| MailError::Unavailable("random".into()))?;
        let id = format!("{time_ms:013}-{seq:08}-{:08x}", u32::from_be_bytes(rand));
        let links = msg
            .text
            .split_whitespace()
            .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
            .map(str::to_owned)
            .collect();
        let entry = OutboxEntry {
            id: id.clone(),
            time_ms,
            to: msg.to.clone(),
            kind: msg.kind.name().to_owned(),
            subject: msg.subject.clone(),
            text: msg.text.clone(),
            html: msg.html.clone(),
            links,
        };
        let bytes = serde_json::to_vec_pretty(&entry).map_err(|e| MailError::Unavailable(e.to_string()))?;
        let tmp = self.dir.join(format!(".{id}.tmp"));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, self.dir.join(format!("{id}.json"))).map_err(io)?;
        // The bound: delete the oldest beyond `max`.
        let mut names = message_files(&self.dir)?;
        if names.len() > self.max {
            names.sort_unstable();
            let excess = names.len() - self.max;
            for old in names.into_iter().take(excess) {
                let _ = std::fs::remove_file(self.dir.join(old));
            }
        }
        Ok(())
    }
}

/// The message files of an outbox directory (not the temporary ones).
fn message_files(dir: &std::path::Path) -> Result<Vec<String>, MailError> {
    let rd = std::fs::read_dir(dir).map_err(|e| MailError::Unavailable(format!("outbox: {}", e.kind())))?;
    Ok(rd
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
        .collect())
}

impl MailTransport for Outbox {
    fn send<'a>(&'a self, msg: &'a Message) -> SendFuture<'a> {
        Box::pin(async move {
            let (this, msg) = (self.clone(), msg.clone());
            tokio::task::spawn_blocking(move || this.write(&msg))
                .await
                .map_err(|e| MailError::Unavailable(format!("outbox task failed: {e}")))?
        })
    }

    fn name(&self) -> &'static str {
        "outbox"
    }
}

/// A sender as configured (`ISSUER_MAIL_FROM`): `addr@example.com` or
/// `Name <addr@example.com>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// The display name, if any.
    pub name: Option<String>,
    /// The bare address (what SES checks against the identity and IAM
    /// against `ses:FromAddress`).
    pub address: String,
}

impl Sender {
    /// Parses `addr` or `Name <addr>`. The address is checked for shape
    /// (ASCII local part and a domain of at least two labels), not for
    /// existence; the name is 1 to 64 characters without control
    /// characters, `"`, `\`, `<` or `>`.
    ///
    /// # Errors
    /// What is wrong, without the value's surroundings.
    pub fn parse(v: &str) -> Result<Self, String> {
        let v = v.trim();
        let (name, address) = match v.strip_suffix('>').and_then(|rest| rest.rsplit_once('<')) {
            Some((name, addr)) => {
                let name = name.trim();
                if name.is_empty() {
                    (None, addr.trim())
                } else {
                    let bad = name.chars().any(|c| c.is_control() || matches!(c, '"' | '\\' | '<' | '>'));
                    if bad || name.chars().count() > 64 {
                        return Err(format!(
                            "{v:?}: the name must be 1 to 64 characters without control characters, \", \\, < or >"
                        ));
                    }
                    (Some(name.to_owned()), addr.trim())
                }
            }
            None if v.contains(['<', '>']) => return Err(format!("{v:?}: expected addr or `Name <addr>`")),
            None => (None, v),
        };
        check_address(address).map_err(|m| format!("{v:?}: {m}"))?;
        Ok(Sender { name, address: address.to_owned() })
    }

    /// The `From` value as sent: the bare address, or `Name <addr>` with the
    /// name quoted when it holds RFC 5322 specials and RFC 2047-encoded
    /// (UTF-8, base64, words of at most 75 characters) when it is not ASCII.
    pub fn header(&self) -> String {
        let Some(name) = &self.name else { return self.address.clone() };
        let name = if !name.is_ascii() {
            // 45 bytes of UTF-8 are 60 of base64: 72 with `=?UTF-8?B?` and `?=`.
            let mut words: Vec<String> = Vec::new();
            let mut chunk = String::new();
            for c in name.chars() {
                if chunk.len() + c.len_utf8() > 45 {
                    words.push(std::mem::take(&mut chunk));
                }
                chunk.push(c);
            }
            words.push(chunk);
            words
                .iter()
                .map(|w| {
                    format!("=?UTF-8?B?{}?=", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, w))
                })
                .collect::<Vec<_>>()
                .join(" ")
        } else if name.contains(['(', ')', '[', ']', ':', ';', '@', ',', '.']) {
            format!("\"{name}\"")
        } else {
            name.clone()
        };
        format!("{name} <{}>", self.address)
    }
}

/// An address of the shape `local@domain.tld`: an ASCII dot-atom local part
/// of up to 64 characters, and up to 253 characters of LDH labels.
fn check_address(a: &str) -> Result<(), &'static str> {
    let (local, domain) = a.rsplit_once('@').ok_or("expected an address (local@domain)")?;
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b);
    let dot_atom = |s: &str| !s.is_empty() && s.split('.').all(|p| !p.is_empty() && p.bytes().all(atext));
    if local.len() > 64 || !dot_atom(local) {
        return Err("the part before @ is not a valid address");
    }
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let labels: Vec<&str> = domain.split('.').collect();
    if domain.len() > 253 || labels.len() < 2 || !labels.iter().all(|l| label(l)) {
        return Err("the domain is not valid (e.g. example.com)");
    }
    Ok(())
}

/// Settings of the [`Ses`] transport. Field docs give defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SesConfig {
    /// The `From` of every message, as sent (`ISSUER_MAIL_FROM`, see
    /// [`Sender::header`]). Its address must belong to a verified identity.
    pub from: String,
    /// The configuration set of every message
    /// (`ISSUER_SES_CONFIGURATION_SET`). Defaults to none.
    pub configuration_set: Option<String>,
    /// Endpoint override, e.g. moto (`SES_ENDPOINT`). Defaults to none: the
    /// SDK's (regional, or `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// TCP connect timeout. Defaults to 1 s.
    pub connect_timeout: std::time::Duration,
    /// Timeout of one HTTP attempt. Defaults to 1.5 s.
    pub attempt_timeout: std::time::Duration,
    /// Timeout of one send, retries included (`ISSUER_MAIL_TIMEOUT_MS`).
    /// Defaults to 3 s.
    pub operation_timeout: std::time::Duration,
    /// Attempts per send, the first included (throttling, 5xx, I/O and
    /// timeouts are retried with jittered exponential backoff; a retry
    /// after a lost answer may deliver a message twice). Defaults to 3.
    pub max_attempts: u32,
    /// First retry backoff (doubling, jittered). Defaults to 50 ms.
    pub initial_backoff: std::time::Duration,
    /// Largest retry backoff. Defaults to 1 s.
    pub max_backoff: std::time::Duration,
}

impl SesConfig {
    /// Default settings for sending as `from` (a [`Sender::header`]).
    pub fn new(from: impl Into<String>) -> Self {
        SesConfig {
            from: from.into(),
            configuration_set: None,
            endpoint: None,
            connect_timeout: std::time::Duration::from_secs(1),
            attempt_timeout: std::time::Duration::from_millis(1500),
            operation_timeout: std::time::Duration::from_secs(3),
            max_attempts: 3,
            initial_backoff: std::time::Duration::from_millis(50),
            max_backoff: std::time::Duration::from_secs(1),
        }
    }

    /// Bounds a whole send by `total`: each attempt gets half of it (so a
    /// timed-out first attempt leaves room for a retry), the connect at most
    /// 1 s of that.
    #[must_use]
    pub fn with_timeout(mut self, total: std::time::Duration) -> Self {
        self.operation_timeout = total;
        self.attempt_timeout = total / 2;
        self.connect_timeout = self.attempt_timeout.min(std::time::Duration::from_secs(1));
        self
    }
}

/// Error codes of SES that mean "later", not "never": throttling and
/// sending-quota limits.
const SES_RETRY_LATER: &[&str] = &[
    "TooManyRequestsException",
    "LimitExceededException",
    "ThrottlingException",
    "Throttling",
    "RequestTimeout",
    "RequestTimeoutException",
    "ServiceUnavailable",
    "InternalFailure",
];

/// Amazon SES (API v2) `SendEmail`: one configured sender, simple content
/// (subject, text and HTML bodies, UTF-8), an optional configuration set.
/// Bounded by the timeouts and attempts of [`SesConfig`]. Cheap to clone.
///
/// Errors name the SES error code and HTTP status only, never the message
/// (its body carries single-use tokens): a refused message (not verified,
/// paused or suspended account, bad request) is [`MailError::Rejected`];
/// throttling, quota, 5xx, timeouts and I/O are [`MailError::Unavailable`].
#[derive(Debug, Clone)]
pub struct Ses {
    client: aws_sdk_sesv2::Client,
    from: String,
    configuration_set: Option<String>,
}

impl Ses {
    /// An SES transport with the region and credentials of `sdk` and the
    /// sender, timeouts, retries and endpoint of `config`.
    pub fn new(sdk: &aws_config::SdkConfig, config: &SesConfig) -> Self {
        use aws_sdk_sesv2::config::retry::RetryConfig;
        use aws_sdk_sesv2::config::timeout::TimeoutConfig;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(config.connect_timeout)
            .operation_attempt_timeout(config.attempt_timeout)
            .operation_timeout(config.operation_timeout)
            .build();
        let retries = RetryConfig::standard()
            .with_max_attempts(config.max_attempts.max(1))
            .with_initial_backoff(config.initial_backoff)
            .with_max_backoff(config.max_backoff);
        let mut builder = aws_sdk_sesv2::config::Builder::from(sdk)
            .timeout_config(timeouts)
            .retry_config(retries)
            .interceptor(crate::trace::TraceHeader);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        Ses {
            client: aws_sdk_sesv2::Client::from_conf(builder.build()),
            from: config.from.clone(),
            configuration_set: config.configuration_set.clone(),
        }
    }

    async fn send_email(&self, msg: &Message) -> Result<(), MailError> {
        use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message as SesMessage};
        let utf8 = |data: &str| {
            Content::builder()
                .data(data)
                .charset("UTF-8")
                .build()
                .map_err(|_| MailError::Rejected("SES SendEmail: the message could not be built".to_owned()))
        };
        let content = EmailContent::builder()
            .simple(
                SesMessage::builder()
                    .subject(utf8(&msg.subject)?)
                    .body(Body::builder().text(utf8(&msg.text)?).html(utf8(&msg.html)?).build())
                    .build(),
            )
            .build();
        self.client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&msg.to).build())
            .content(content)
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| ses_error(msg.kind, &e))
    }
}

/// Maps a failed `SendEmail` to [`MailError`]: the error code and status
/// only (never the message, nor SES's text, which can quote addresses).
fn ses_error(
    kind: MessageKind,
    err: &aws_sdk_sesv2::error::SdkError<
        aws_sdk_sesv2::operation::send_email::SendEmailError,
        aws_sdk_sesv2::config::http::HttpResponse,
    >,
) -> MailError {
    use aws_sdk_sesv2::error::{ProvideErrorMetadata as _, SdkError};
    let (what, later) = match err {
        SdkError::TimeoutError(_) => ("timed out".to_owned(), true),
        SdkError::DispatchFailure(d) if d.is_timeout() => ("timed out".to_owned(), true),
        SdkError::DispatchFailure(d) if d.is_io() => ("connection failed".to_owned(), true),
        SdkError::DispatchFailure(_) => ("request could not be sent".to_owned(), true),
        SdkError::ResponseError(_) => ("unreadable response".to_owned(), true),
        SdkError::ConstructionFailure(_) => ("request could not be built".to_owned(), true),
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("unknown error");
            let status = se.raw().status().as_u16();
            (format!("{code} (HTTP {status})"), status >= 500 || SES_RETRY_LATER.contains(&code))
        }
        _ => ("unknown failure".to_owned(), true),
    };
    tracing::warn!(kind = kind.name(), error = %what, refused = !later, "SES SendEmail failed");
    let what = format!("SES SendEmail: {what}");
    if later { MailError::Unavailable(what) } else { MailError::Rejected(what) }
}

impl MailTransport for Ses {
    fn send<'a>(&'a self, msg: &'a Message) -> SendFuture<'a> {
        Box::pin(self.send_email(msg))
    }

    fn name(&self) -> &'static str {
        "ses"
    }
}

/// The configured mail transport could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailInitError {
    /// The outbox directory could not be created.
    #[error("mail outbox in {}: {error}", dir.display())]
    Outbox {
        /// The directory.
        dir: std::path::PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// `ISSUER_MAIL=ses` without an AWS region to send from.
    #[error("ISSUER_MAIL=ses: no AWS region is configured (set AWS_REGION)")]
    NoRegion,
    /// This entry point cannot build the configured transport (the
    /// synchronous local app mails to the outbox only; `issuer serve` and
    /// the Lambda build SES).
    #[error(
        "ISSUER_MAIL={0}: not available in the in-process local issuer (use ISSUER_MAIL=outbox, or `issuer serve`)"
    )]
    Unsupported(&'static str),
}

impl Mailer {
    /// The mailer `cfg.mail` asks for: the [`Outbox`] in
    /// `<data dir>/`[`crate::server::OUTBOX_DIR`], or [`Ses`] with the
    /// region and credentials of `sdk` (loaded from the environment when
    /// `None`). Logs which transport it built (never a secret).
    ///
    /// # Errors
    /// [`MailInitError`]: the outbox directory cannot be created, or SES
    /// has no region.
    pub async fn from_config(
        cfg: &crate::config::IssuerConfig,
        sdk: Option<&aws_config::SdkConfig>,
    ) -> Result<Mailer, MailInitError> {
        let Some(ses) = cfg.ses_config() else { return Mailer::outbox_from_config(cfg) };
        let loaded;
        let sdk = match sdk {
            Some(sdk) => sdk,
            None => {
                loaded = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                &loaded
            }
        };
        let region = sdk.region().ok_or(MailInitError::NoRegion)?;
        tracing::info!(
            transport = "ses",
            from = %ses.from,
            region = %region,
            configuration_set = ses.configuration_set.as_deref().unwrap_or(""),
            endpoint = ses.endpoint.as_deref().unwrap_or(""),
            timeout_ms = u64::try_from(ses.operation_timeout.as_millis()).unwrap_or(u64::MAX),
            "mail transport ready"
        );
        Ok(Mailer::new(Ses::new(sdk, &ses)))
    }

    /// The [`Outbox`] mailer of `cfg` (`ISSUER_MAIL=outbox`), without I/O
    /// beyond creating the directory: for callers that are not async.
    ///
    /// # Errors
    /// [`MailInitError::Outbox`]; [`MailInitError::Unsupported`] when `cfg`
    /// asks for SES (use [`Mailer::from_config`]).
    pub fn outbox_from_config(cfg: &crate::config::IssuerConfig) -> Result<Mailer, MailInitError> {
        if cfg.ses_config().is_some() {
            return Err(MailInitError::Unsupported("ses"));
        }
        let dir = cfg.data_dir.join(crate::server::OUTBOX_DIR);
        let outbox = Outbox::open(&dir).map_err(|error| MailInitError::Outbox { dir: dir.clone(), error })?;
        tracing::info!(transport = "outbox", dir = %dir.display(), "mail transport ready");
        Ok(Mailer::new(outbox))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brand() -> Branding {
        Branding { product: "Pets <b>&".into(), link_base: "https://app.example.com".into() }
    }

    #[test]
    fn links_carry_the_token_url_encoded_and_html_is_escaped() {
        let m = compose(MessageKind::VerifyEmail, "a<script>@example.com", &brand(), Some("ab+/="));
        assert!(m.text.contains("https://app.example.com/verify-email?token=ab%2B%2F%3D"), "{}", m.text);
        assert!(!m.html.contains("<b>") && m.html.contains("&lt;b&gt;"), "{}", m.html);
        assert!(!format!("{m:?}").contains("token"));
        let r = compose(MessageKind::PasswordReset, "a@example.com", &brand(), Some("t"));
        assert!(r.text.contains("/reset-password?token=t"));
        assert!(r.html.contains(r#"<a href="https://app.example.com/reset-password?token=t">"#), "{}", r.html);
        let n = compose(MessageKind::SignupAttempt, "a@example.com", &brand(), Some("t"));
        assert!(!n.text.contains("token"), "a notice carries no link");
    }

    #[tokio::test]
    async fn the_outbox_keeps_whole_files_newest_first_and_bounded() {
        let dir = std::env::temp_dir().join(format!("outbox-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let outbox = Outbox::open(&dir).unwrap().with_max(3);
        let mailer = Mailer::new(outbox.clone());
        for i in 0..5 {
            let m = compose(MessageKind::VerifyEmail, &format!("u{i}@example.com"), &brand(), Some("tok"));
            mailer.send(&m).await.unwrap();
        }
        let listed = outbox.list(10).await.unwrap();
        let to: Vec<&str> = listed.iter().map(|e| e.to.as_str()).collect();
        assert_eq!(to, ["u4@example.com", "u3@example.com", "u2@example.com"]);
        assert_eq!(listed[0].links, ["https://app.example.com/verify-email?token=tok"]);
        assert_eq!(outbox.list(1).await.unwrap().len(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(Mailer::new(NoMail).send(&listed[0].clone().into_message()).await.is_err());
    }
}
