// The search page in a real browser: sign-in-free searches (text, a facet, a cone) against a
// running node, an accessibility check of the page in both themes, and screenshots.
//
// Usage: node search.mjs <node base URL> <screenshot dir>
// Prints one JSON object with what it saw; the Rust test judges it.
import { mkdirSync } from 'node:fs';
import { axe, launch } from './chromium.mjs';

const [base, shots] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
async function total(page) {
  const status = page.getByRole('status');
  await status.filter({ hasText: /products/ }).waitFor({ timeout: 15000 });
  const text = await status.textContent();
  return Number(/(\d+) products/.exec(text)[1]);
}

const browser = await launch();
const out = {};
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  await page.goto(base + '/');
  out.url = page.url();
  out.title = await page.title();

  await page.getByLabel('Text', { exact: true }).fill('crab');
  await page.getByRole('button', { name: 'Search' }).click();
  out.total = await total(page);
  out.rows = await page.locator('tbody tr').count();
  // The page's hits on the sky; a click at the map's centre picks RA 180, Dec 0.
  out.skyHits = await page.locator('.results-sky circle.hit').count();
  const sky = page.locator('.results-sky svg[role=img]');
  const box = await sky.boundingBox();
  await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
  const coneFields = ['ra', 'dec', 'radius'].map((n) => page.locator(`form.search input[name=${n}]`));
  out.picked = [];
  for (const field of coneFields) out.picked.push(await field.inputValue());
  // Back to no cone for what follows.
  for (const field of coneFields) await field.fill('');
  out.nodes = [...new Set(await page.locator('tbody tr td:nth-child(5)').allTextContents())].sort();
  await page.screenshot({ path: `${shots}/search-light.png`, fullPage: true });
  out.violationsLight = await axe(page);

  // Narrow by a mission facet.
  const facet = page.getByRole('group', { name: 'Mission' }).getByRole('checkbox').first();
  const label = await page.getByRole('group', { name: 'Mission' }).locator('label').first().textContent();
  out.facetLabel = label;
  const before = out.total;
  await facet.check();
  await page.getByRole('status').filter({ hasNotText: new RegExp(`^${before} products`) }).waitFor({ timeout: 15000 });
  out.facetTotal = await total(page);

  // Dark theme, checked again.
  await page.getByRole('button', { name: /dark theme/ }).click();
  await page.locator('html[data-theme="dark"]').waitFor({ state: 'attached', timeout: 5000 }).catch(() => {});
  out.theme = await page.evaluate(() => document.documentElement.dataset.theme);
  await page.screenshot({ path: `${shots}/search-dark.png`, fullPage: true });
  out.violationsDark = await axe(page);

  // A cone with no text, on a fresh page.
  const cone = await context.newPage();
  await cone.goto(base + '/ui/');
  await cone.getByLabel('RA', { exact: true }).fill('83.63');
  await cone.getByLabel('Dec', { exact: true }).fill('22.01');
  await cone.getByLabel('Radius', { exact: true }).fill('0.5');
  await cone.getByRole('button', { name: 'Search' }).click();
  out.coneTotal = await total(cone);
  // A half-given cone is the user's mistake, said so on the page.
  await cone.getByLabel('Radius', { exact: true }).fill('');
  await cone.getByRole('button', { name: 'Search' }).click();
  out.coneError = await cone.getByRole('alert').first().textContent();

  // The federation page: every member, its collections, and the coverage on the sky.
  const fed = await context.newPage();
  fed.on('pageerror', (e) => errors.push(String(e)));
  await fed.goto(base + '/ui/#/federation');
  await fed.getByRole('heading', { level: 1, name: /Federation/ }).waitFor({ timeout: 15000 });
  await fed.locator('li.member').first().waitFor({ timeout: 15000 });
  out.members = (await fed.locator('li.member h2').allTextContents()).map((t) => t.trim());
  out.reach = await fed.locator('li.member .reach').allTextContents();
  out.skyCells = await fed.locator('svg rect.cell').count();
  out.collections = await fed.locator('li.member tbody tr').count();
  await fed.screenshot({ path: `${shots}/federation.png`, fullPage: true });
  out.violationsFederation = await axe(fed);

  // GraphiQL, served by the node itself, under the same content security policy.
  const gq = await context.newPage();
  const gqErrors = [];
  gq.on('pageerror', (e) => gqErrors.push(String(e)));
  gq.on('console', (m) => {
    if (m.type() === 'error') gqErrors.push(m.text());
  });
  await gq.goto(base + '/graphql');
  await gq.locator('.graphiql-container').waitFor({ timeout: 20000 });
  // Run the default query (a federated search) and read the answer.
  await gq.locator('.graphiql-execute-button').click();
  await gq.locator('.result-window').filter({ hasText: '"total"' }).waitFor({ timeout: 20000 });
  out.graphiqlResult = await gq.locator('.result-window').innerText();
  await gq.screenshot({ path: `${shots}/graphiql.png` });
  out.graphiqlErrors = gqErrors;

  // The API reference (Swagger UI from its npm package, served by the node): it reads the
  // node's OpenAPI document and lists its operations; one is tried from the page.
  const docs = await context.newPage();
  const docsErrors = [];
  docs.on('pageerror', (e) => docsErrors.push(String(e)));
  docs.on('console', (m) => {
    if (m.type() === 'error') docsErrors.push(m.text());
  });
  await docs.goto(base + '/api/docs');
  await docs.locator('.opblock').first().waitFor({ timeout: 20000 });
  out.docsOperations = await docs.locator('.opblock-summary-path').allInnerTexts();
  const federation = docs.locator('#operations-federation-federation');
  await federation.locator('.opblock-summary').click();
  await federation.locator('.try-out__btn').click();
  await federation.locator('.execute').click();
  await federation.locator('.live-responses-table tr.response .response-col_status').first().waitFor({ timeout: 20000 });
  out.docsTried = (await federation.locator('.live-responses-table tr.response .response-col_status').first().innerText()).trim();
  await docs.screenshot({ path: `${shots}/api-docs.png` });
  out.docsErrors = docsErrors;
  out.errors = errors;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
