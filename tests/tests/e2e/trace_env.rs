//! Guard for the per-invocation memory fix in vendor/ (vendor/README.md):
//! the vendored lambda_runtime is the one built, and neither Lambda
//! bootstrap exports the invocation's trace id into the process
//! environment, whose strings glibc never frees.
//!
//! Checked by behaviour: a small preloaded library (`LD_PRELOAD`, built here
//! with `cc`) logs every `setenv` and `putenv` call of the process, which is
//! how Rust's `std::env::set_var` changes the environment on Linux. A
//! bootstrap driven through the Runtime API with a fresh trace id per
//! invocation must make none for `_X_AMZN_TRACE_ID`.

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e_tests::tokens::{claims, sign};
use e2e_tests::{JwksServer, Outcome, Proc, RuntimeApi};
use serde_json::json;
use token_core::{Algorithm, SigningKey};

const SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void note(const char *what, const char *name, size_t len) {
    const char *path = getenv("SETENV_PROBE_LOG");
    if (!path) return;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
    if (fd < 0) return;
    char buf[512];
    int n = snprintf(buf, sizeof buf, "%s %d %.*s\n", what, (int)getpid(), (int)(len > 200 ? 200 : len), name);
    if (n > 0) (void)!write(fd, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
    close(fd);
}

__attribute__((constructor)) static void loaded(void) { note("loaded", "-", 1); }

int setenv(const char *name, const char *value, int overwrite) {
    static int (*real)(const char *, const char *, int);
    if (!real) real = (int (*)(const char *, const char *, int))dlsym(RTLD_NEXT, "setenv");
    note("setenv", name, strlen(name));
    return real(name, value, overwrite);
}

int putenv(char *string) {
    static int (*real)(char *);
    if (!real) real = (int (*)(char *))dlsym(RTLD_NEXT, "putenv");
    const char *eq = strchr(string, '=');
    note("putenv", string, eq ? (size_t)(eq - string) : strlen(string));
    return real(string);
}
"#;

const CONTROL: &str = r#"
#include <stdlib.h>
int main(void) { return setenv("_X_AMZN_TRACE_ID", "Root=1-control", 1); }
"#;

/// The preloadable library and a log file for one process.
#[derive(Debug)]
pub struct SetenvProbe {
    lib: PathBuf,
    log: PathBuf,
}

fn compile(dir: &Path, name: &str, source: &str, args: &[&str]) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).unwrap();
    let out = dir.join(name);
    let result = Command::new("cc").args(args).arg("-o").arg(&out).arg(&src).arg("-ldl").output();
    match result {
        Ok(o) if o.status.success() => out,
        Ok(o) => panic!("cc failed on {}: {}", src.display(), String::from_utf8_lossy(&o.stderr)),
        Err(e) => panic!("cannot run cc (a C compiler is needed, see README): {e}"),
    }
}

impl SetenvProbe {
    /// Builds the library (once per test) and an empty log named by `tag`.
    pub fn build(tag: &str) -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("setenv-probe-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lib = compile(&dir, "setenv-probe.so", SHIM, &["-shared", "-fPIC", "-O1"]);
        let log = dir.join("calls.log");
        let _ = std::fs::remove_file(&log);
        let probe = SetenvProbe { lib, log };
        probe.control(&dir);
        probe
    }

    /// Positive control: a program that sets the trace id variable through
    /// `setenv`, run with the library preloaded, is seen doing it.
    fn control(&self, dir: &Path) {
        let bin = compile(dir, "setenv-control", CONTROL, &[]);
        let control_log = dir.join("control.log");
        let _ = std::fs::remove_file(&control_log);
        let status =
            Command::new(&bin).env("LD_PRELOAD", &self.lib).env("SETENV_PROBE_LOG", &control_log).status().unwrap();
        assert!(status.success());
        let seen = std::fs::read_to_string(&control_log).unwrap_or_default();
        assert!(
            seen.lines().any(|l| l.starts_with("setenv ") && l.ends_with(" _X_AMZN_TRACE_ID")),
            "the probe did not see the control's setenv: {seen:?}"
        );
    }

    /// `LD_PRELOAD` and the log's path, for the process under test.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("LD_PRELOAD".into(), self.lib.to_string_lossy().into_owned()),
            ("SETENV_PROBE_LOG".into(), self.log.to_string_lossy().into_owned()),
        ]
    }

    /// Asserts that process `pid` loaded the probe and never set
    /// `_X_AMZN_TRACE_ID`.
    pub fn assert_no_trace_id_env(&self, pid: u32) {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mine: Vec<&str> =
            log.lines().filter(|l| l.split(' ').nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid)).collect();
        assert!(mine.iter().any(|l| l.starts_with("loaded ")), "the probe was not loaded into {pid}: {log:?}");
        let set: Vec<&&str> = mine.iter().filter(|l| l.ends_with(" _X_AMZN_TRACE_ID")).collect();
        assert!(
            set.is_empty(),
            "the trace id went into the environment {} times (set_trace_id_env(false) lost?), first: {:?}",
            set.len(),
            &set[..set.len().min(3)]
        );
    }
}

/// The vendored crate is the one in both lock files: a path dependency
/// (no registry `source`), so `[patch.crates-io]` is in effect.
#[test]
fn the_vendored_lambda_runtime_is_the_one_built() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for lock in ["Cargo.lock", "tests/fuzz/Cargo.lock"] {
        let text = std::fs::read_to_string(root.join(lock)).unwrap();
        let entries: Vec<&str> =
            text.split("[[package]]").filter(|p| p.contains("\nname = \"lambda_runtime\"\n")).collect();
        assert_eq!(entries.len(), 1, "{lock}: one lambda_runtime");
        assert!(!entries[0].contains("source ="), "{lock}: lambda_runtime comes from a registry, not vendor/");
    }
    let vendored = std::fs::read_to_string(root.join("vendor/lambda_runtime/src/runtime.rs")).unwrap();
    assert!(vendored.contains("pub fn set_trace_id_env(enabled: bool)"));
}

/// The authorizer bootstrap, 200 invocations, a fresh trace id each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorizer_never_puts_the_trace_id_in_the_environment() {
    let probe = SetenvProbe::build("authorizer");
    let k = SigningKey::generate(Algorithm::ES256, "k1").unwrap();
    let jwks = JwksServer::start(&[&k]).await;
    let rt = RuntimeApi::start().await;
    let url = jwks.url();
    let mut env: Vec<(String, String)> = rt.lambda_env();
    env.extend(probe.env());
    env.extend([
        ("AUTH_ISSUER".into(), "https://issuer.test".into()),
        ("AUTH_AUDIENCE".into(), "api".into()),
        ("AUTH_JWKS_URL".into(), url),
    ]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let p = Proc::start("authorizer", &[], &env);
    let token = sign(&k, &claims("https://issuer.test", "api", "u", "", 900));
    let event = serde_json::to_vec(&json!({"type": "TOKEN", "authorizationToken": format!("Bearer {token}"),
        "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abc123def4/prod/GET/pets"}))
    .unwrap();
    for _ in 0..200 {
        assert!(matches!(rt.invoke(event.clone()).await, Outcome::Response(_)));
    }
    probe.assert_no_trace_id_env(p.pid());
}
