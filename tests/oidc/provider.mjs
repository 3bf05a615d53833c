// A real OpenID Connect provider on loopback for the test suite: oidc-provider (OpenID
// Certified), with its development login pages, which accept any account id. Tests sign in as
// ORCID-shaped ids to exercise the ORCID binding.
//
// Environment:
//   OIDC_CLIENTS  JSON array of clients: [{client_id, client_secret, redirect_uris: [...]}]
//   OIDC_NAMES    optional JSON object: account id -> display name
//   OIDC_PORT     optional port (default: a free one)
// Prints one line `ready <issuer>` on stdout once it listens, then serves until killed.
import http from 'node:http';
import Provider from 'oidc-provider';

const clients = JSON.parse(process.env.OIDC_CLIENTS ?? '[]');
const names = JSON.parse(process.env.OIDC_NAMES ?? '{}');
const server = http.createServer();
server.listen(Number(process.env.OIDC_PORT ?? 0), '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: clients.map((c) => ({
      grant_types: ['authorization_code'],
      response_types: ['code'],
      ...c,
    })),
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    claims: { openid: ['sub'], profile: ['name'] },
    conformIdTokenClaims: false,
    cookies: { keys: ['orrery-test-provider'] },
    findAccount: (_ctx, id) => ({
      accountId: id,
      claims: () => ({ sub: id, name: names[id] ?? `Researcher ${id}` }),
    }),
  });
  // Loopback over plain HTTP is what the tests use; the provider warns about it once.
  provider.on('server_error', (_ctx, err) => console.error('provider error:', err));
  server.on('request', provider.callback());
  console.log(`ready ${issuer}`);
});
