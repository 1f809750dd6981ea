// The seed system's API Gateway Lambda authorizer, as it was written on its
// Node.js stack: jsonwebtoken.verify (RS256) with the key from jwks-rsa
// (fetched once at init; an unknown kid is refetched, rate-limited), returning
// an IAM policy shaped like ours (authorizer/src/policy.rs).
//
// Settings (the same variables as our authorizer, so one harness drives both):
//   AUTH_ISSUER, AUTH_AUDIENCE, AUTH_JWKS_URL   required
//   AUTH_REQUIRED_SCOPES                        optional, space/comma separated
//
// Events: TOKEN (`authorizationToken`) and REQUEST (`headers.Authorization`).
// Answers: Allow on the whole stage; Deny (whole stage) when a required scope
// is missing; an `Unauthorized` error (API Gateway's 401) for a missing,
// malformed, expired, forged or otherwise invalid token.
//
// No verified-token cache: the seed verified every token it was given (API
// Gateway's own policy cache aside), and so does this port.
import jwt from 'jsonwebtoken';
import jwksRsa from 'jwks-rsa';

const JWKS_TIMEOUT_MS = 2000;
let settings = null;
let jwks = null;
// kid -> PEM public key, filled from the JWKS at init. The PEM string is
// what jwks-rsa hands out and what the seed passed to jsonwebtoken, which
// parses it on every verify.
const keys = new Map();

function required(env, name) {
  const v = env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

/** Reads the settings and fetches the JWKS once (the cold start). */
export async function init(env = process.env) {
  settings = {
    issuer: required(env, 'AUTH_ISSUER'),
    audience: required(env, 'AUTH_AUDIENCE').split(',').map((s) => s.trim()).filter(Boolean),
    scopes: (env.AUTH_REQUIRED_SCOPES ?? '').split(/[\s,]+/).filter(Boolean),
  };
  jwks = jwksRsa({
    jwksUri: required(env, 'AUTH_JWKS_URL'),
    cache: true,
    cacheMaxEntries: 5,
    cacheMaxAge: 10 * 60 * 1000,
    rateLimit: true,
    jwksRequestsPerMinute: 10,
    timeout: JWKS_TIMEOUT_MS,
  });
  keys.clear();
  for (const k of await jwks.getSigningKeys()) keys.set(k.kid, k.getPublicKey());
}

/** The key for `kid`: from init's JWKS, else one rate-limited refetch. */
async function publicKey(kid) {
  let pem = keys.get(kid);
  if (pem === undefined) {
    pem = (await jwks.getSigningKey(kid)).getPublicKey();
    keys.set(kid, pem);
  }
  return pem;
}

function unauthorized() {
  return new Error('Unauthorized');
}

function bearer(event) {
  let header = event?.authorizationToken;
  if (header === undefined && event?.headers) {
    header = event.headers.Authorization ?? event.headers.authorization;
  }
  if (typeof header !== 'string') return null;
  const m = /^Bearer ([A-Za-z0-9._~+/=-]+)$/.exec(header);
  return m ? m[1] : null;
}

/** `arn:aws:execute-api:region:account:api/stage` of a method ARN, or null. */
function stageArn(arn) {
  if (typeof arn !== 'string' || !arn.startsWith('arn:')) return null;
  const parts = arn.split(':');
  if (parts.length < 6 || parts[2] !== 'execute-api') return null;
  const [api, stage] = parts.slice(5).join(':').split('/');
  if (!api || !stage) return null;
  return `${parts.slice(0, 5).join(':')}:${api}/${stage}`;
}

function policy(principalId, allow, resource, context) {
  return {
    principalId,
    policyDocument: {
      Version: '2012-10-17',
      Statement: [{ Action: ['execute-api:Invoke'], Effect: allow ? 'Allow' : 'Deny', Resource: [resource] }],
    },
    context,
  };
}

export async function handler(event) {
  if (!settings) throw new Error('init() was not called');
  const stage = stageArn(event?.methodArn);
  const token = bearer(event);
  if (!stage || !token) throw unauthorized();
  const decoded = jwt.decode(token, { complete: true });
  if (!decoded || typeof decoded.header?.kid !== 'string') throw unauthorized();
  let claims;
  try {
    claims = jwt.verify(token, await publicKey(decoded.header.kid), {
      algorithms: ['RS256'],
      issuer: settings.issuer,
      audience: settings.audience,
    });
  } catch {
    throw unauthorized();
  }
  if (typeof claims?.sub !== 'string') throw unauthorized();
  const scope = typeof claims.scope === 'string' ? claims.scope : '';
  const granted = new Set(scope.split(' ').filter(Boolean));
  const allow = settings.scopes.every((s) => granted.has(s));
  return policy(claims.sub, allow, `${stage}/*/*`, { sub: claims.sub, scope });
}
