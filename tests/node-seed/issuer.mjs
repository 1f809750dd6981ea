// The seed system's login and refresh, as written on its Node.js stack:
// users in a map (seeded at init: the seed read them from its database,
// which is not what is measured here), `bcrypt.compare` at cost 10 (native
// `bcrypt`), `jsonwebtoken.sign` RS256 access tokens for 15 minutes, and
// opaque refresh tokens (32 random bytes) stored by their SHA-256.
//
// Events: API Gateway REST proxy events.
//   POST /login    {"email","password"} -> 200 {access_token, token_type, expires_in}
//                  + Set-Cookie refresh_token; 401 for a wrong email or password
//   POST /refresh  Cookie refresh_token=... -> 200, a new access token and a
//                  rotated refresh token; 401 for an unknown or expired one
//
// Settings:
//   ISSUER_URL, ISSUER_AUDIENCE     required (iss, aud)
//   ISSUER_SIGNING_KEY_PEM          required, PKCS#8 RSA private key
//   SEED_USERS                      required, JSON [{"email","hash"|"password","scope"}]:
//                                   a bcrypt hash as the seed's database held it, or a
//                                   password hashed at init (cost 10)
import crypto from 'node:crypto';
import bcrypt from 'bcrypt';
import jwt from 'jsonwebtoken';

export const BCRYPT_COST = 10;
const ACCESS_TTL_S = 900;
const REFRESH_TTL_S = 30 * 24 * 3600;

let settings = null;
const users = new Map(); // email -> {sub, hash, scope}
const refreshTokens = new Map(); // sha256 hex -> {sub, scope, exp}
// Compared against when the email is unknown, so a miss costs one bcrypt too:
// a cost-10 hash of 24 random bytes nobody kept.
const DUMMY_HASH = '$2b$10$cLXIQA7MLSnoi1tJOlPWIuG30Os5/htvGglUdETMdpsaveAxRcmGK';

function required(env, name) {
  const v = env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

export async function init(env = process.env) {
  settings = {
    issuer: required(env, 'ISSUER_URL'),
    audience: required(env, 'ISSUER_AUDIENCE'),
    key: crypto.createPrivateKey(required(env, 'ISSUER_SIGNING_KEY_PEM')),
    kid: env.ISSUER_KID ?? 'seed-1',
  };
  let seed;
  try {
    seed = JSON.parse(required(env, 'SEED_USERS'));
  } catch (err) {
    throw new Error(`SEED_USERS: ${err.message}`);
  }
  users.clear();
  refreshTokens.clear();
  for (const [i, u] of seed.entries()) {
    users.set(String(u.email).toLowerCase(), {
      sub: `user-${i}`,
      hash: typeof u.hash === 'string' ? u.hash : await bcrypt.hash(String(u.password), BCRYPT_COST),
      scope: u.scope ?? '',
    });
  }
}

const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');

function json(statusCode, body, headers = {}) {
  return {
    statusCode,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers },
    body: JSON.stringify(body),
    isBase64Encoded: false,
  };
}

const unauthorized = () => json(401, { error: 'invalid_grant' });

function tokens(user) {
  const access = jwt.sign({ scope: user.scope }, settings.key, {
    algorithm: 'RS256',
    keyid: settings.kid,
    header: { typ: 'at+jwt' },
    issuer: settings.issuer,
    audience: settings.audience,
    subject: user.sub,
    expiresIn: ACCESS_TTL_S,
    jwtid: crypto.randomUUID(),
  });
  const refresh = crypto.randomBytes(32).toString('base64url');
  refreshTokens.set(sha256(refresh), { sub: user.sub, scope: user.scope, exp: Date.now() / 1000 + REFRESH_TTL_S });
  return json(
    200,
    { access_token: access, token_type: 'Bearer', expires_in: ACCESS_TTL_S },
    { 'set-cookie': `refresh_token=${refresh}; Path=/refresh; Max-Age=${REFRESH_TTL_S}; HttpOnly; Secure; SameSite=Strict` },
  );
}

async function login(event) {
  let body;
  try {
    const raw = event.isBase64Encoded ? Buffer.from(event.body ?? '', 'base64').toString('utf8') : event.body;
    body = JSON.parse(raw ?? '');
  } catch {
    return json(400, { error: 'invalid_request' });
  }
  if (typeof body?.email !== 'string' || typeof body?.password !== 'string') return json(400, { error: 'invalid_request' });
  const user = users.get(body.email.toLowerCase());
  const ok = await bcrypt.compare(body.password, user ? user.hash : DUMMY_HASH);
  if (!user || !ok) return unauthorized();
  return tokens(user);
}

function cookie(event, name) {
  const h = event.headers ?? {};
  const raw = h.Cookie ?? h.cookie ?? '';
  for (const part of raw.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return null;
}

function refresh(event) {
  const token = cookie(event, 'refresh_token');
  if (!token) return unauthorized();
  const digest = sha256(token);
  const entry = refreshTokens.get(digest);
  if (!entry || entry.exp < Date.now() / 1000) return unauthorized();
  refreshTokens.delete(digest); // rotation: one use each
  return tokens(entry);
}

export async function handler(event) {
  if (!settings) throw new Error('init() was not called');
  if (event?.httpMethod === 'POST' && event.path === '/login') return login(event);
  if (event?.httpMethod === 'POST' && event.path === '/refresh') return refresh(event);
  return json(404, { error: 'not_found' });
}
