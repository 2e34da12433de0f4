// A real OpenID Connect provider for the tests: the certified `oidc-provider`, on 127.0.0.1.
//
//   node provider.mjs STATE_FILE
//
// It listens on a free port and prints `listening <issuer>` once ready. STATE_FILE (JSON) is read at every
// use, so a test changes the identity provider's side (accounts, their groups) by rewriting it:
//   {"clients": [{"client_id", "client_secret"}], "accounts": {"<login>": {claims}},
//    "id_token_audience": null | "<aud>", "userinfo_only_claims": ["groups", ...]}
// Sign-in uses the provider's own development pages (any password; the login name is the account).
import { readFileSync } from 'node:fs';
import http from 'node:http';

import { SignJWT, decodeJwt, exportJWK, generateKeyPair, importJWK } from 'jose';
import Provider from 'oidc-provider';

const stateFile = process.argv[2];
const readState = () => JSON.parse(readFileSync(stateFile, 'utf8'));

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const signingKey = { ...(await exportJWK(privateKey)), kid: 'test-key', alg: 'RS256', use: 'sig' };

const server = http.createServer();
await new Promise((resolve) => { server.listen(0, '127.0.0.1', resolve); });
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: readState().clients.map((client) => ({
    ...client,
    // Registered once; the apps under test listen on random ports (see redirectUriAllowed below).
    redirect_uris: ['http://localhost/auth/sso/callback'],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  })),
  jwks: { keys: [signingKey] },
  cookies: { keys: ['test-only-cookie-key'] },
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username', 'name'],
    groups: ['groups'],
  },
  conformIdTokenClaims: false, // the claims of the granted scopes go in the ID token, as Keycloak and Entra do
  pkce: { required: () => true }, // a client that does not send PKCE is refused
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims(use) {
        const state = readState();
        const claims = { ...(state.accounts[sub] || {}), sub };
        if (use === 'id_token') {
          // As some providers do: these claims come from the userinfo endpoint only.
          for (const name of state.userinfo_only_claims || []) delete claims[name];
        }
        return claims;
      },
    };
  },
  // A first-party client: no consent page, every requested scope and claim is granted.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const existing = await ctx.oidc.provider.Grant.find(grantId);
      if (existing) return existing;
    }
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope(ctx.oidc.params.scope);
    grant.addOIDCClaims(['sub', 'email', 'email_verified', 'preferred_username', 'name', 'groups']);
    await grant.save();
    return grant;
  },
});

// Any port of the test apps' hosts, the callback path only.
provider.Client.prototype.redirectUriAllowed = function redirectUriAllowed(value) {
  try {
    const url = new URL(value);
    return ['localhost', '127.0.0.1'].includes(url.hostname) && url.pathname === '/auth/sso/callback' && !url.search;
  } catch {
    return false;
  }
};

// A misbehaving identity provider for one test: the ID token names another audience (signed with the real key).
provider.use(async (ctx, next) => {
  await next();
  const audience = ctx.path === '/token' && ctx.status === 200 && ctx.body?.id_token && readState().id_token_audience;
  if (audience) {
    const claims = { ...decodeJwt(ctx.body.id_token), aud: audience };
    ctx.body = {
      ...ctx.body,
      id_token: await new SignJWT(claims)
        .setProtectedHeader({ alg: 'RS256', kid: signingKey.kid })
        .sign(await importJWK(signingKey, 'RS256')),
    };
  }
});

server.on('request', provider.callback());
process.stdout.write(`listening ${issuer}\n`);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
