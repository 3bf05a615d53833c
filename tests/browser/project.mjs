// A project page in a real browser, as anyone may read a public project: its notebook rendered
// as Jupyter renders it (math, highlighted code, a figure, sanitised HTML, a coloured
// traceback), then the credit view colouring each part of a cell by who wrote it.
//
// Usage: node project.mjs <node base URL> <project id> <screenshot dir>
// Prints one JSON object with what it saw; the Rust test judges it.
import { mkdirSync } from 'node:fs';
import { axe, launch } from './chromium.mjs';

const [base, project, shots] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });

const browser = await launch();
const out = {};
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
  const page = await context.newPage();
  const errors = [];
  const blocked = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    // The browser's own refusal of the hostile output's event handler (its content security
    // policy) is counted apart: it is the defence working, not the page failing.
    if (m.text().includes('violates the following Content Security Policy')) blocked.push(m.text());
    else errors.push(`${m.text()} (${m.location().url}:${m.location().lineNumber})`);
  });
  let alerts = 0;
  page.on('dialog', async (d) => {
    alerts += 1;
    await d.dismiss();
  });
  await page.goto(`${base}/ui/#/projects/${project}`);
  await page.locator('article.notebook .cell').first().waitFor({ timeout: 15000 });
  // Math comes from a chunk loaded on demand.
  await page.locator('.md math').first().waitFor({ timeout: 15000 });
  await page.locator('.output.is-error').first().waitFor({ timeout: 15000 });
  out.title = (await page.locator('#project-title').innerText()).trim();
  out.heading = (await page.locator('.md h1').first().innerText()).trim();
  out.math = await page.locator('.md math').count();
  out.displayMath = await page.locator('.md math[display="block"]').count();
  out.keywords = await page.locator('code.hljs .hljs-keyword').count();
  out.images = await page.locator('.output.is-image img').count();
  out.imageLoaded = await page.locator('.output.is-image img').first().evaluate((img) => img.complete && img.naturalWidth > 0);
  out.bold = await page.locator('.output.is-html b').first().innerText();
  out.scripts = await page.locator('.outputs script').count();
  out.handlers = await page.locator('.outputs [onerror], .outputs [onload], .outputs [onclick]').count();
  out.stream = (await page.locator('.output.is-stream').first().innerText()).trim();
  out.ansiRed = await page.locator('.output.is-error .ansi-red-fg').count();
  out.members = (await page.locator('.members-list li').allInnerTexts()).map((t) => t.trim());
  out.history = await page.locator('ol.history li').count();
  await page.screenshot({ path: `${shots}/project.png`, fullPage: true });
  out.violations = await axe(page);

  // The credit view.
  await page.getByLabel('Show who wrote what').check();
  await page.locator('pre.credited').first().waitFor({ timeout: 15000 });
  const code = page.locator('div.cell.code').first();
  out.spans = await code.locator('pre.credited span').evaluateAll((spans) =>
    spans.map((s) => ({ author: s.dataset.author, text: s.textContent, title: s.title })),
  );
  out.legend = (await page.locator('.legend-list li').allInnerTexts()).map((t) => t.trim());
  await page.screenshot({ path: `${shots}/project-credit.png`, fullPage: true });
  out.violationsCredit = await axe(page);
  // The same in the dark theme.
  await page.getByRole('button', { name: 'Use the dark theme' }).click();
  await page.locator('html[data-theme=dark]').waitFor({ state: 'attached', timeout: 5000 });
  await page.screenshot({ path: `${shots}/project-credit-dark.png`, fullPage: true });
  out.violationsDark = await axe(page);
  // The list of projects.
  await page.goto(`${base}/ui/#/projects`);
  await page.locator('ul.projects li').first().waitFor({ timeout: 15000 });
  out.listed = (await page.locator('ul.projects li a').allInnerTexts()).map((t) => t.trim());
  await page.screenshot({ path: `${shots}/projects.png` });
  out.violationsList = await axe(page);
  out.alerts = alerts;
  out.blocked = blocked.length;
  out.errors = errors;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
