// A cell run from the project page in a real browser, signed in (a session cookie the test made
// on the node): the Run button sends it to the data; the first output shows while the cell still
// runs; the result and its provenance (the computing node, the requester, how it ended) show
// beside the outputs once recorded. The page is checked for accessibility and photographed.
//
// Usage: node runs.mjs <node base URL> <session secret> <project id> <screenshot dir>
// Prints one JSON object with what it saw; the Rust test judges it.
import { mkdirSync } from 'node:fs';
import { axe, launch, signedInPage } from './chromium.mjs';

const [base, secret, project, shots] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });

const browser = await launch();
const out = {};
try {
  const { page, errors } = await signedInPage(browser, base, secret, { width: 1280, height: 900 });
  await page.goto(`${base}/ui/#/projects/${project}`);
  const cell = page.locator('.cell.code').first();
  const run = cell.getByRole('button', { name: 'Run the cell at the data' });
  await run.waitFor({ timeout: 15000 });
  await run.click();
  // The first output arrives while the cell runs (it sleeps after printing).
  await cell.locator('.output').filter({ hasText: 'streamed' }).waitFor({ timeout: 120000 });
  out.streamedWhileRunning = (await cell.locator('.prompt').innerText()).includes('*');
  await cell.locator('.provenance').waitFor({ timeout: 60000 });
  out.outputs = (await cell.locator('.outputs').innerText()).trim();
  out.provenance = (await cell.locator('.provenance summary').innerText()).trim();
  out.prompt = (await cell.locator('.prompt span').innerText()).trim();
  await cell.locator('.provenance summary').click();
  out.record = (await cell.locator('.provenance dl').innerText()).trim();
  out.status = (await page.locator('.notebook [role=status]').last().innerText()).trim();
  // A large output is stored beside the project; the page fetches and draws it.
  const second = page.locator('.cell.code').nth(2);
  await second.getByRole('button', { name: 'Run the cell at the data' }).click();
  await second.locator('.provenance').waitFor({ timeout: 60000 });
  const img = second.locator('.output img');
  await img.waitFor({ timeout: 15000 });
  out.storedImage = await img.evaluate((i) => i.decode().then(() => i.naturalWidth));
  await page.screenshot({ path: `${shots}/run-at-the-data.png`, fullPage: true });
  out.violations = await axe(page);

  // The notebook run whole as a job, with a parameter; its run read on the Jobs page.
  await page.getByText('Run as a job').click();
  await page.getByLabel(/Parameters, one/).fill('factor = 3');
  await page.getByRole('button', { name: 'Queue the job' }).click();
  out.queued = (await page.locator('.job-form [role=status]').innerText({ timeout: 15000 })).trim();
  await page.getByRole('link', { name: 'Jobs' }).last().click();
  const kept = page.locator('.job-run[data-run="1"]');
  await kept.waitFor({ timeout: 120000 });
  await kept.locator('summary').click();
  out.jobRun = (await kept.locator('summary').innerText()).trim();
  out.jobParameters = (await kept.locator('p.sub').innerText()).trim();
  out.jobOutput = (await kept.locator('.job-cell').filter({ hasText: 'folded' }).locator('.outputs').innerText()).trim();
  await page.screenshot({ path: `${shots}/jobs.png`, fullPage: true });
  out.jobViolations = await axe(page);
  out.errors = errors;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
