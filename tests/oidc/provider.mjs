// A real OpenID provider (the `oidc-provider` package) on 127.0.0.1 for Sluice's end-to-end
// tests of `sluice login` by device flow (RFC 8628).
//
//   node provider.mjs [PORT]        (or OIDC_PORT=PORT; 0 or nothing: any free port)
//
// Prints exactly one line `READY http://127.0.0.1:PORT` on stdout once listening; that URL is the
// issuer. Logs errors to stderr. Exits on SIGTERM/SIGINT, and when its stdin ends if
// OIDC_EXIT_ON_STDIN_EOF=1 (the Rust harness sets it, so a killed test never leaves a provider).
//
// Environment:
//   OIDC_ID_TOKEN_TTL, OIDC_ACCESS_TOKEN_TTL   seconds, default 300
//   OIDC_REFRESH_TOKEN_TTL                     seconds, default 86400
//   OIDC_DEVICE_CODE_TTL                       seconds, default 600
//   OIDC_DEVICE_POLL_INTERVAL                  seconds, default 1: the `interval` added to the
//                                              device authorization response (oidc-provider sends
//                                              none, so clients would wait RFC 8628's default 5 s);
//                                              0 leaves it out
//
// The login page of devInteractions accepts any password; the login names it knows are those of
// USERS below (any other name fails the flow). approve.mjs drives those pages as a browser would.

import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const CLIENT_ID = 'sluice-cli';

const USERS = {
  alice: { email: 'alice@example.com', groups: ['dba', 'dev'] },
  bob: { email: 'bob@example.com', groups: ['dev'] },
  mallory: { email: 'mallory@example.com', groups: [] },
};

function seconds(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) {
    console.error(`${name} must be a positive whole number of seconds, not ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return value;
}

function signingKeys() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  const kid = () => randomBytes(8).toString('hex');
  // The first key of an algorithm signs; RS256 is the default for ID tokens.
  return {
    keys: [
      { ...rsa, kid: `rs256-${kid()}`, alg: 'RS256', use: 'sig' },
      { ...ec, kid: `es256-${kid()}`, alg: 'ES256', use: 'sig' },
    ],
  };
}

function account(id) {
  const user = Object.hasOwn(USERS, id) ? USERS[id] : undefined;
  if (!user) return undefined;
  return {
    accountId: id,
    async claims() {
      return {
        sub: id,
        preferred_username: id,
        email: user.email,
        email_verified: true,
        groups: [...user.groups],
      };
    },
  };
}

function configuration() {
  return {
    clients: [
      {
        client_id: CLIENT_ID,
        client_name: 'Sluice CLI',
        token_endpoint_auth_method: 'none',
        grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
        response_types: [],
        redirect_uris: [],
      },
    ],
    jwks: signingKeys(),
    cookies: { keys: [randomBytes(32).toString('hex')] },
    scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
    claims: {
      openid: ['sub'],
      profile: ['preferred_username'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    // The scopes' claims go into the ID token itself, not only to userinfo.
    conformIdTokenClaims: false,
    findAccount: async (_ctx, id) => account(id),
    features: {
      deviceFlow: { enabled: true },
      devInteractions: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      userinfo: { enabled: true },
    },
    // A refresh token whenever the client may use the grant and offline_access was granted.
    issueRefreshToken: async (_ctx, client, code) =>
      client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
    // Public client, tokens not sender-constrained: every refresh rotates the refresh token.
    rotateRefreshToken: () => true,
    ttl: {
      IdToken: seconds('OIDC_ID_TOKEN_TTL', 300),
      AccessToken: seconds('OIDC_ACCESS_TOKEN_TTL', 300),
      RefreshToken: seconds('OIDC_REFRESH_TOKEN_TTL', 86400),
      DeviceCode: seconds('OIDC_DEVICE_CODE_TTL', 600),
    },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = `<!DOCTYPE html><html><head><title>oops! something went wrong</title></head><body>
<h1>oops! something went wrong</h1><pre id="error">${Object.entries(out)
        .map(([k, v]) => `${k}: ${String(v).replace(/[<>&]/g, '')}`)
        .join('\n')}</pre></body></html>`;
    },
  };
}

async function main() {
  const arg = process.argv[2] ?? process.env.OIDC_PORT ?? '0';
  const wanted = Number(arg);
  if (!Number.isInteger(wanted) || wanted < 0 || wanted > 65535) {
    console.error(`usage: node provider.mjs [PORT]  (not a port: ${JSON.stringify(arg)})`);
    process.exit(2);
  }

  // Listen first so that port 0 works: the issuer needs the real port.
  let handler = (_req, res) => {
    res.statusCode = 503;
    res.end('starting');
  };
  const server = createServer((req, res) => handler(req, res));
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(wanted, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;

  const provider = new Provider(issuer, configuration());
  provider.on('server_error', (ctx, err) => {
    console.error(`server_error ${ctx?.method} ${ctx?.path}:`, err);
  });
  const interval = process.env.OIDC_DEVICE_POLL_INTERVAL === '0'
    ? 0 : seconds('OIDC_DEVICE_POLL_INTERVAL', 1);
  const deviceAuthorizationPath = provider.pathFor('device_authorization');
  provider.use(async (ctx, next) => {
    await next();
    if (interval && ctx.method === 'POST' && ctx.path === deviceAuthorizationPath
        && ctx.status === 200 && ctx.body && typeof ctx.body === 'object' && ctx.body.device_code) {
      ctx.body = { ...ctx.body, interval };
    }
  });
  handler = provider.callback();

  const stop = () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (process.env.OIDC_EXIT_ON_STDIN_EOF === '1') {
    process.stdin.on('data', () => {});
    process.stdin.on('end', stop);
    process.stdin.on('error', stop);
  }

  process.stdout.write(`READY ${issuer}\n`);
}

main().catch((err) => {
  console.error('provider failed to start:', err);
  process.exit(1);
});
