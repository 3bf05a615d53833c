// Debian's Chromium, headless, through playwright-core (no browser download), with the flags
// this machine's closed network needs.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

export async function launch() {
  return chromium.launch({
    executablePath: process.env.ORRERY_CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/// A page signed in at the node `base` with a session cookie the test made on the node, and
/// the errors it reports (uncaught exceptions, console errors) as they happen.
export async function signedInPage(browser, base, secret, viewport) {
  const context = await browser.newContext({ viewport, colorScheme: 'light' });
  await context.addCookies([{ name: 'orrery_session', value: secret, url: base, httpOnly: true, sameSite: 'Lax' }]);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  return { context, page, errors };
}

/// The accessibility violations axe-core finds on the page.
export async function axe(page) {
  // Evaluated through the DevTools protocol: the page's content security policy (which
  // forbids inline scripts) stays in force for the page itself.
  await page.evaluate(axeSource);
  return page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help }));
  });
}

/// Signs `page` in at the node `base` through its OpenID provider, filling in the provider's
/// login (as `login`) and consent pages as a person would; resolves once the node's page shows
/// who is signed in.
export async function signInThroughProvider(page, base, login) {
  await page.goto(base + '/');
  const signIn = page.getByRole('link', { name: /^Sign in/ });
  await signIn.first().click();
  for (let step = 0; step < 6 && !page.url().startsWith(base); step += 1) {
    await page.locator('form').first().waitFor({ timeout: 15000 });
    const name = page.locator('input[name=login]');
    if (await name.count()) {
      await name.fill(login);
      await page.locator('input[name=password]').fill('anything');
    }
    const before = page.url();
    await page.locator('form [type=submit]').first().click();
    await page.waitForURL((u) => u.href !== before, { timeout: 15000 });
  }
  await page.locator('.account .who .name').waitFor({ timeout: 15000 });
}
