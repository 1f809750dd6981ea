// The seed handlers answer as the bill assumes: the authorizer allows,
// denies and refuses (401); the issuer logs in with the right password only
// and rotates refresh tokens; runtime.mjs carries both outcomes through a
// Runtime API. Run: `node --test` in tests/node-seed (the bench script runs it
// before measuring, and stops if it fails).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import bcrypt from 'bcrypt';
import jwt from 'jsonwebtoken';

import * as authorizer from '../authorizer.mjs';
import * as issuer from '../issuer.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const ISS = 'https://issuer.test';
const ARN = 'arn:aws:execute-api:us-east-1:123456789012:abc123def4/prod/GET/pets';
const STAGE_ALL = 'arn:aws:execute-api:us-east-1:123456789012:abc123def4/prod/*/*';

const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'RS256', use: 'sig' };

function listen(handler) {
  return new Promise((resolve) => {
    const server = http.createServer(handler);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}
const url = (server, p) => `http://127.0.0.1:${server.address().port}${p}`;

function token(claims, { key = privateKey, kid = 'k1', expiresIn = 300, issuer = ISS } = {}) {
  return jwt.sign({ scope: 'pets:read', ...claims }, key, {
    algorithm: 'RS256', keyid: kid, issuer, audience: 'api', subject: 'user-1', expiresIn,
  });
}

let jwksServer;
let jwksFetches = 0;
before(async () => {
  jwksServer = await listen((req, res) => {
    jwksFetches += 1;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: [jwk] }));
  });
});
after(() => jwksServer.close());

const authEnv = () => ({
  AUTH_ISSUER: ISS,
  AUTH_AUDIENCE: 'api',
  AUTH_JWKS_URL: url(jwksServer, '/jwks.json'),
  AUTH_REQUIRED_SCOPES: 'pets:read',
});

describe('authorizer', () => {
  let initFetches;
  before(async () => {
    const before = jwksFetches;
    await authorizer.init(authEnv());
    initFetches = jwksFetches - before;
  });

  it('fetches the JWKS once at init', () => assert.equal(initFetches, 1));

  it('allows a valid token on the whole stage, with the subject as principal', async () => {
    const before = jwksFetches;
    const p = await authorizer.handler({ type: 'TOKEN', authorizationToken: `Bearer ${token()}`, methodArn: ARN });
    assert.equal(p.principalId, 'user-1');
    assert.deepEqual(p.policyDocument.Statement, [{ Action: ['execute-api:Invoke'], Effect: 'Allow', Resource: [STAGE_ALL] }]);
    assert.equal(p.context.scope, 'pets:read');
    assert.equal(jwksFetches, before, 'the key comes from the cache filled at init');
  });

  it('reads REQUEST events too', async () => {
    const ev = { type: 'REQUEST', methodArn: ARN, headers: { Authorization: `Bearer ${token()}` } };
    assert.equal((await authorizer.handler(ev)).policyDocument.Statement[0].Effect, 'Allow');
  });

  it('denies a valid token without the required scope', async () => {
    const p = await authorizer.handler({ type: 'TOKEN', authorizationToken: `Bearer ${token({ scope: 'other' })}`, methodArn: ARN });
    assert.equal(p.policyDocument.Statement[0].Effect, 'Deny');
  });

  it('refetches the JWKS for an unknown kid, then refuses', async () => {
    const before = jwksFetches;
    const ev = { type: 'TOKEN', authorizationToken: `Bearer ${token({}, { kid: 'k9' })}`, methodArn: ARN };
    await assert.rejects(authorizer.handler(ev), { message: 'Unauthorized' });
    assert.equal(jwksFetches, before + 1);
  });

  const refused = {
    'no token': { type: 'TOKEN', methodArn: ARN },
    'not bearer': { type: 'TOKEN', authorizationToken: 'Basic abc', methodArn: ARN },
    garbage: { type: 'TOKEN', authorizationToken: 'Bearer not.a.jwt', methodArn: ARN },
    'wrong signing key': { type: 'TOKEN', authorizationToken: `Bearer ${token({}, { key: other.privateKey })}`, methodArn: ARN },
    expired: { type: 'TOKEN', authorizationToken: `Bearer ${token({}, { expiresIn: -10 })}`, methodArn: ARN },
    'wrong issuer': { type: 'TOKEN', authorizationToken: `Bearer ${token({}, { issuer: 'https://evil.test' })}`, methodArn: ARN },
    'bad method ARN': { type: 'TOKEN', authorizationToken: `Bearer ${token()}`, methodArn: 'nope' },
  };
  for (const [name, ev] of Object.entries(refused)) {
    it(`answers Unauthorized (401): ${name}`, async () => {
      await assert.rejects(authorizer.handler(ev), { message: 'Unauthorized' });
    });
  }
});

describe('issuer', () => {
  const login = (email, password) => ({
    httpMethod: 'POST', path: '/login', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }), isBase64Encoded: false,
  });
  const refresh = (cookie) => ({ httpMethod: 'POST', path: '/refresh', headers: { Cookie: cookie }, body: null });

  before(() =>
    issuer.init({
      ISSUER_URL: ISS,
      ISSUER_AUDIENCE: 'api',
      ISSUER_SIGNING_KEY_PEM: privateKey.export({ format: 'pem', type: 'pkcs8' }),
      ISSUER_KID: 'k1',
      SEED_USERS: JSON.stringify([
        { email: 'ann@example.com', password: 'correct horse battery', scope: 'pets:read' },
        { email: 'cy@example.com', hash: bcrypt.hashSync('tr0ub4dor&3', 10), scope: '' },
      ]),
    }));

  it('hashes seeded passwords with bcrypt cost 10', () => assert.equal(issuer.BCRYPT_COST, 10));

  let cookie;
  it('logs in with the right password: a 15-minute RS256 token the authorizer accepts', async () => {
    const r = await issuer.handler(login('ann@example.com', 'correct horse battery'));
    assert.equal(r.statusCode, 200);
    const body = JSON.parse(r.body);
    const claims = jwt.verify(body.access_token, publicKey, { algorithms: ['RS256'], issuer: ISS, audience: 'api' });
    assert.equal(claims.exp - claims.iat, 900);
    assert.equal(jwt.decode(body.access_token, { complete: true }).header.typ, 'at+jwt');
    const p = await authorizer.handler({ type: 'TOKEN', authorizationToken: `Bearer ${body.access_token}`, methodArn: ARN });
    assert.equal(p.policyDocument.Statement[0].Effect, 'Allow');
    cookie = r.headers['set-cookie'].split(';')[0];
    assert.match(cookie, /^refresh_token=[A-Za-z0-9_-]{43}$/);
  });

  it('takes a seeded bcrypt hash as it is', async () => {
    assert.equal((await issuer.handler(login('cy@example.com', 'tr0ub4dor&3'))).statusCode, 200);
    assert.equal((await issuer.handler(login('cy@example.com', 'tr0ub4dor&4'))).statusCode, 401);
  });

  it('refuses a wrong password and an unknown email with the same 401', async () => {
    const wrong = await issuer.handler(login('ann@example.com', 'correct horse battery!'));
    const unknown = await issuer.handler(login('bob@example.com', 'correct horse battery'));
    assert.equal(wrong.statusCode, 401);
    assert.deepEqual([unknown.statusCode, unknown.body], [wrong.statusCode, wrong.body]);
  });

  it('refuses a malformed body with 400', async () => {
    assert.equal((await issuer.handler({ ...login('a', 'b'), body: '{' })).statusCode, 400);
  });

  it('rotates refresh tokens: the old one works once', async () => {
    const r = await issuer.handler(refresh(cookie));
    assert.equal(r.statusCode, 200);
    assert.notEqual(r.headers['set-cookie'].split(';')[0], cookie);
    assert.equal((await issuer.handler(refresh(cookie))).statusCode, 401);
    assert.equal((await issuer.handler(refresh('refresh_token=made-up'))).statusCode, 401);
  });
});

describe('runtime.mjs', () => {
  it('posts a response and an error through the Runtime API', async () => {
    const events = [
      { type: 'TOKEN', authorizationToken: `Bearer ${token()}`, methodArn: ARN },
      { type: 'TOKEN', authorizationToken: 'Bearer garbage', methodArn: ARN },
    ];
    const outcomes = [];
    let done;
    const finished = new Promise((r) => { done = r; });
    const api = await listen((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        if (req.url.endsWith('/invocation/next')) {
          const i = outcomes.length;
          if (i >= events.length) return; // hold the long poll; the test ends
          res.setHeader('lambda-runtime-aws-request-id', `req-${i}`);
          res.setHeader('lambda-runtime-deadline-ms', String(Date.now() + 3000));
          res.end(JSON.stringify(events[i]));
          return;
        }
        const m = /invocation\/(req-\d+)\/(response|error)$/.exec(req.url);
        outcomes.push(m ? [m[1], m[2], JSON.parse(Buffer.concat(chunks).toString())] : [req.url]);
        res.statusCode = 202;
        res.end();
        if (outcomes.length === events.length) done();
      });
    });
    const child = spawn(process.execPath, ['runtime.mjs', './authorizer.mjs'], {
      cwd: path.join(here, '..'),
      env: { ...authEnv(), AWS_LAMBDA_RUNTIME_API: `127.0.0.1:${api.address().port}` },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const timer = setTimeout(() => done(), 10_000);
    await finished;
    clearTimeout(timer);
    child.kill();
    api.closeAllConnections();
    api.close();
    assert.equal(outcomes.length, 2, `outcomes: ${JSON.stringify(outcomes)}`);
    assert.deepEqual(outcomes[0].slice(0, 2), ['req-0', 'response']);
    assert.equal(outcomes[0][2].policyDocument.Statement[0].Effect, 'Allow');
    assert.deepEqual(outcomes[1], ['req-1', 'error', { errorType: 'Error', errorMessage: 'Unauthorized' }]);
  });
});
