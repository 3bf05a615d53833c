// The labs page in a real browser, signed in (a session cookie the test made on the node): a
// collection is chosen, a lab started with its steps shown as they happen, opened through the
// node's proxy on its own origin (JupyterLab loads), and stopped; the page is checked for
// accessibility and photographed.
//
// Usage: node labs.mjs <node base URL> <session secret> <screenshot dir>
// Prints one JSON object with what it saw; the Rust test judges it.
import { mkdirSync } from 'node:fs';
import { axe, launch, signedInPage } from './chromium.mjs';

const [base, secret, shots] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });

const browser = await launch();
const out = {};
try {
  const { context, page, errors } = await signedInPage(browser, base, secret, { width: 1280, height: 800 });
  await page.goto(base + '/ui/#/labs?data=gaia');
  out.who = (await page.locator('.account .who .name').innerText({ timeout: 15000 })).trim();
  const gaia = page.getByRole('checkbox', { name: /gaia/ });
  await gaia.waitFor({ timeout: 15000 });
  // "Open in a lab" from a search result arrives with the collection chosen.
  out.preselected = await gaia.isChecked();

  // Every progress line the page shows while the lab starts.
  await page.evaluate(() => {
    window.__steps = [];
    new MutationObserver(() => {
      for (const li of document.querySelectorAll('ol.steps li')) {
        if (!window.__steps.includes(li.textContent)) window.__steps.push(li.textContent);
      }
    }).observe(document.body, { childList: true, subtree: true, characterData: true });
  });
  await page.getByRole('button', { name: 'Start a lab' }).click();
  const row = page.locator('tr[data-lab]').first();
  await row.locator('.state-running').waitFor({ timeout: 120000 });
  out.steps = await page.evaluate(() => window.__steps);
  out.lab = await row.getAttribute('data-lab');
  out.runsAt = (await row.locator('td').nth(2).innerText()).trim();
  await page.screenshot({ path: `${shots}/labs-running.png`, fullPage: true });
  out.violations = await axe(page);

  // Open: a new tab on the lab's own origin, where JupyterLab loads.
  const [lab] = await Promise.all([context.waitForEvent('page'), row.getByRole('link', { name: 'Open' }).click()]);
  await lab.waitForLoadState('domcontentloaded');
  await lab.locator('#jp-main-dock-panel, .jp-LabShell').first().waitFor({ timeout: 90000 });
  out.labUrl = lab.url();
  out.labTitle = await lab.title();
  // No news prompt: the lab has no network to fetch news with.
  out.newsPrompt = await lab.getByText('official Jupyter news').count();
  await lab.screenshot({ path: `${shots}/lab-jupyterlab.png` });
  await lab.close();

  // From a search result, a second collection goes into the running lab's data volume.
  await page.goto(base + '/ui/#/search');
  await page.getByLabel('Text', { exact: true }).fill('stars');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByRole('button', { name: 'Add to data volume: collection tycho' }).first().click();
  out.added = (await page.locator('.to-volume [role=status]').innerText({ timeout: 30000 })).trim();
  await page.goto(base + '/ui/#/labs');
  await row.locator('td').nth(1).filter({ hasText: 'tycho' }).waitFor({ timeout: 15000 });
  out.data = (await row.locator('td').nth(1).innerText()).trim();

  // Logs, then stop: the state changes live.
  await row.getByRole('button', { name: 'Logs' }).click();
  await row.locator('pre.logs').waitFor({ timeout: 15000 });
  await row.getByRole('button', { name: 'Stop' }).click();
  await row.locator('.state-stopped').waitFor({ timeout: 60000 });
  out.after = (await row.locator('.state').innerText()).trim();
  out.restartOffered = await row.getByRole('button', { name: 'Start again' }).isVisible();
  await page.screenshot({ path: `${shots}/labs-stopped.png`, fullPage: true });
  out.errors = errors;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
