//! A store that records the name of every operation called on it, around
//! a real one: tests assert the store work of a path by structure (shared by
//! `#[path]`).

use std::sync::Mutex;

use issuer::store::{
    AttemptCounter, AttemptOutcome, Family, FeedCursor, NewRefresh, NewUser, PasswordChange, PendingSignup,
    RefreshRecord, ResetToken, RevocationEvent, RevocationPage, RotateOutcome, SignupOutcome, Store, StoreError,
    UserRecord,
};

impl<S> Counting<S> {
    /// Around `inner`.
    pub fn new(inner: S) -> Self {
        Counting { inner, ops: Mutex::new(Vec::new()) }
    }
}

/// The real store, recording the name of every operation called on it.
pub struct Counting<S> {
    /// The real store.
    pub inner: S,
    /// The operations called, in order.
    pub ops: Mutex<Vec<&'static str>>,
}

impl<S> Counting<S> {
    fn note(&self, op: &'static str) {
        self.ops.lock().unwrap().push(op);
    }

    /// The operations since the last call.
    pub fn take_ops(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.ops.lock().unwrap())
    }
}

impl<S: Store> Store for Counting<S> {
    async fn create_user(&self, user: &NewUser) -> Result<(), StoreError> {
        self.note("create_user");
        self.inner.create_user(user).await
    }
    async fn find_user_by_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        self.note("find_user_by_email");
        self.inner.find_user_by_email(email).await
    }
    async fn get_user(&self, user_id: &str) -> Result<Option<UserRecord>, StoreError> {
        self.note("get_user");
        self.inner.get_user(user_id).await
    }
    async fn record_login_failure(
        &self,
        user_id: &str,
        now: u64,
        lock_after: u32,
        max_lock_secs: u64,
    ) -> Result<UserRecord, StoreError> {
        self.note("record_login_failure");
        self.inner.record_login_failure(user_id, now, lock_after, max_lock_secs).await
    }
    async fn record_login_success(&self, user_id: &str, now: u64, new_hash: Option<&str>) -> Result<bool, StoreError> {
        self.note("record_login_success");
        self.inner.record_login_success(user_id, now, new_hash).await
    }
    async fn create_session(&self, family: &Family, first: &NewRefresh) -> Result<(), StoreError> {
        self.note("create_session");
        self.inner.create_session(family, first).await
    }
    async fn get_refresh(&self, token_hash: &str) -> Result<Option<(RefreshRecord, Family)>, StoreError> {
        self.note("get_refresh");
        self.inner.get_refresh(token_hash).await
    }
    async fn rotate(&self, old_hash: &str, new: &NewRefresh, now: u64) -> Result<RotateOutcome, StoreError> {
        self.note("rotate");
        self.inner.rotate(old_hash, new, now).await
    }
    async fn add_to_family(&self, new: &NewRefresh, now: u64) -> Result<bool, StoreError> {
        self.note("add_to_family");
        self.inner.add_to_family(new, now).await
    }
    async fn revoke_family(&self, family_id: &str, now: u64) -> Result<(), StoreError> {
        self.note("revoke_family");
        self.inner.revoke_family(family_id, now).await
    }
    async fn revoke_user_families(&self, user_id: &str, now: u64) -> Result<u32, StoreError> {
        self.note("revoke_user_families");
        self.inner.revoke_user_families(user_id, now).await
    }
    async fn take_attempt(&self, counters: &[AttemptCounter], now: u64) -> Result<AttemptOutcome, StoreError> {
        self.note("take_attempt");
        self.inner.take_attempt(counters, now).await
    }
    async fn clear_attempts(&self, counter: &AttemptCounter, now: u64) -> Result<(), StoreError> {
        self.note("clear_attempts");
        self.inner.clear_attempts(counter, now).await
    }
    async fn record_revocation(&self, event: &RevocationEvent, now: u64) -> Result<bool, StoreError> {
        self.note("record_revocation");
        self.inner.record_revocation(event, now).await
    }
    async fn create_signup(&self, signup: &PendingSignup) -> Result<(), StoreError> {
        self.note("create_signup");
        self.inner.create_signup(signup).await
    }
    async fn complete_signup(&self, token_hash: &str, user_id: &str, now: u64) -> Result<SignupOutcome, StoreError> {
        self.note("complete_signup");
        self.inner.complete_signup(token_hash, user_id, now).await
    }
    async fn put_reset(&self, reset: &ResetToken) -> Result<(), StoreError> {
        self.note("put_reset");
        self.inner.put_reset(reset).await
    }
    async fn get_reset(&self, user_id: &str) -> Result<Option<ResetToken>, StoreError> {
        self.note("get_reset");
        self.inner.get_reset(user_id).await
    }
    async fn change_password(&self, change: &PasswordChange, now: u64) -> Result<bool, StoreError> {
        self.note("change_password");
        self.inner.change_password(change, now).await
    }
    async fn revocations_after(
        &self,
        after: Option<&FeedCursor>,
        limit: usize,
        now_ms: u64,
    ) -> Result<RevocationPage, StoreError> {
        self.note("revocations_after");
        self.inner.revocations_after(after, limit, now_ms).await
    }
}
