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
    let html = lines.iter().map(|l| format!("<p>{}</p>", html_escape::encode_safe(l))).collect::<Vec<_>>().join("\n");
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
