#!/usr/bin/env bash
# Reproduces the per-invocation memory growth of a Lambda bootstrap (issue 7)
# and checks the fix: drives the release authorizer and issuer bootstraps
# through the Lambda Runtime API on loopback with a fresh trace id per
# invocation, as Lambda does, and prints resident memory after 10,000,
# 100,000 and 1,000,000 invocations (one `BENCH` line per checkpoint).
#
# The issuer's init reads its signing keys from Secrets Manager: a pinned
# moto server on a loopback port plays AWS, and is stopped on exit.
#
# Usage: scripts/bench-lambda-memory.sh [INVOCATIONS]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-1000000}"
MOTO_VERSION=5.2.1
CHECKPOINTS=10000,100000

cargo build --release -p authorizer -p issuer -p e2e-tests --bins
python3 -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
command -v openssl >/dev/null || { echo "openssl is needed to make a signing key"; exit 1; }

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m moto.server -H 127.0.0.1 -p "$PORT" >/tmp/bench-moto.log 2>&1 &
MOTO=$!
trap 'kill $MOTO 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT/moto-api/" 2>/dev/null && break; sleep 0.2; done
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

KEY=$(openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null)
ARN=$(KEY="$KEY" PORT="$PORT" python3 - <<'PY'
import json, os, boto3
sm = boto3.client("secretsmanager", endpoint_url=f"http://127.0.0.1:{os.environ['PORT']}")
ring = {"active": "bench-1", "keys": [{"kid": "bench-1", "alg": "RS256", "private_key_pem": os.environ["KEY"]}]}
print(sm.create_secret(Name="bench-signing-keys", SecretString=json.dumps(ring))["ARN"])
PY
)

echo "== authorizer: 1,000 distinct tokens cycling, fresh trace id per invocation"
target/release/lambda-bench --bin target/release/authorizer --invocations "$N" \
  --checkpoints "$CHECKPOINTS" --distinct 1000 --alg EdDSA

echo "== issuer: GET /.well-known/jwks.json through API Gateway proxy events, fresh trace id per invocation"
target/release/lambda-bench --bin target/release/issuer-lambda --invocations "$N" --checkpoints "$CHECKPOINTS" \
  --event-file scripts/fixtures/issuer-jwks-event.json \
  --env "AWS_ENDPOINT_URL=http://127.0.0.1:$PORT" --env AWS_ACCESS_KEY_ID=testing \
  --env AWS_SECRET_ACCESS_KEY=testing --env AWS_REGION=us-east-1 --env AWS_EC2_METADATA_DISABLED=true \
  --env "ISSUER_URL=https://abc123.execute-api.us-east-1.amazonaws.com/prod" --env ISSUER_AUDIENCE=api \
  --env "ISSUER_SIGNING_KEY_SECRET_ARN=$ARN" --env ISSUER_COOKIE_PATH_PREFIX=/prod \
  --env ISSUER_MAIL_FROM=no-reply@example.com --env "SES_ENDPOINT=http://127.0.0.1:$PORT"
