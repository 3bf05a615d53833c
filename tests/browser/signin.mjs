// Signing in from the node's pages in a real browser, through a real OpenID provider: the
// header offers the node's provider, the provider's login and consent pages are filled in as a
// person would, the browser comes back signed in (name and verified ORCID iD in the header),
// and signs out again.
//
// Usage: node signin.mjs <node base URL> <login> <screenshot dir>
// Prints one JSON object with what it saw; the Rust test judges it.
import { mkdirSync } from 'node:fs';
import { axe, launch, signInThroughProvider } from './chromium.mjs';

const [base, login, shots] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });

const browser = await launch();
const out = {};
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  // Only the node's own pages are judged (the provider's are not ours).
  page.on('console', (m) => {
    if (m.type() === 'error' && (m.location().url ?? '').startsWith(base)) errors.push(m.text());
  });
  await page.goto(base + '/');
  const signIn = page.getByRole('link', { name: /^Sign in/ });
  await signIn.waitFor({ timeout: 15000 });
  out.offered = (await signIn.allInnerTexts()).map((t) => t.trim());
  await page.screenshot({ path: `${shots}/signed-out.png` });
  out.violationsSignedOut = await axe(page);

  // The provider's pages: its login form, then its consent form (if it asks).
  await signInThroughProvider(page, base, login);
  out.landed = page.url();
  const who = page.locator('.account .who .name');
  await who.waitFor({ timeout: 15000 });
  out.name = (await who.innerText()).trim();
  out.orcid = await page.locator('.account .orcid').innerText().catch(() => null);
  await page.screenshot({ path: `${shots}/signed-in.png` });
  out.violationsSignedIn = await axe(page);

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('link', { name: /^Sign in/ }).waitFor({ timeout: 15000 });
  // Signed out on the node too, not only on the page.
  out.sessionAfter = await page.evaluate(async () => (await (await fetch('/api/v1/session')).json()).signed_in);
  out.errors = errors;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
