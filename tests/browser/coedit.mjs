// Two researchers co-edit one cell from two nodes, each in a browser signed in at their own
// node through its OpenID provider: both type at once, both see the merged text and each
// other's caret, and keystrokes reach the other browser quickly.
//
// Usage: node coedit.mjs <node A> <login A> <node B> <login B> <project> <cell> <screenshot dir>
// Prints one JSON object with what it saw; the Rust test judges it.
import { mkdirSync } from 'node:fs';
import { axe, launch, signInThroughProvider } from './chromium.mjs';

const [baseA, loginA, baseB, loginB, project, cell, shots] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });

// Grace's connection to her node can be cut: the page's live socket goes through this route,
// which closes it, and holds the page's attempts to reconnect until it is let through again.
const line = { down: false, live: [], held: [] };
function cuttable(ws) {
  if (line.down) {
    line.held.push(ws);
    return;
  }
  line.live.push([ws, ws.connectToServer()]);
}
async function cut() {
  line.down = true;
  for (const [page, server] of line.live.splice(0)) {
    await server.close().catch(() => {});
    await page.close().catch(() => {});
  }
}
function restore() {
  line.down = false;
  for (const ws of line.held.splice(0)) line.live.push([ws, ws.connectToServer()]);
}

async function open(browser, base, login, errors, route) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  if (route) await page.routeWebSocket(/\/live/, route);
  page.on('pageerror', (e) => errors.push(String(e)));
  // Only the node's own pages are judged (the provider's are not ours).
  page.on('console', (m) => {
    if (m.type() === 'error' && (m.location().url ?? '').startsWith(base)) errors.push(m.text());
  });
  await signInThroughProvider(page, base, login);
  const name = (await page.locator('.account .who .name').innerText()).trim();
  await page.goto(`${base}/ui/#/projects/${project}`);
  await page.getByRole('button', { name: 'Edit together' }).first().click();
  const area = page.locator(`.cm-content[data-cell="${cell}"]`);
  await area.waitFor({ timeout: 15000 });
  await page.locator('[data-state="live"]').waitFor({ timeout: 15000 });
  return { page, area, name };
}

// The editor's text: its lines (a cell this small is drawn whole).
const value = (area) => area.evaluate((el) => Array.from(el.querySelectorAll('.cm-line'), (l) => l.textContent).join('\n'));

// Where the other person's caret is drawn in `area`'s editor: the line it is on and how far
// from that line's start (pixels), with the name it carries.
const remoteCaret = (area) =>
  area.evaluate((el) => {
    const editor = el.closest('.cm-editor');
    const caret = editor.querySelector('.cm-remote-caret');
    if (!caret) return null;
    const box = caret.getBoundingClientRect();
    const mid = box.top + box.height / 2;
    const lines = Array.from(el.querySelectorAll('.cm-line'));
    const line = lines.findIndex((l) => {
      const r = l.getBoundingClientRect();
      return mid >= r.top && mid <= r.bottom;
    });
    // The text's start: the line's left edge plus its padding.
    const start = line >= 0 ? lines[line].getBoundingClientRect().left + parseFloat(getComputedStyle(lines[line]).paddingLeft) : 0;
    return { line, x: Math.round(box.left - start), name: caret.textContent };
  });

async function until(check, what, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const browser = await launch();
const out = { errors: [] };
try {
  const a = await open(browser, baseA, loginA, out.errors);
  const b = await open(browser, baseB, loginB, out.errors, cuttable);
  out.names = [a.name, b.name];
  out.before = await value(a.area);
  // Ada types at the end, Grace at the start, at the same time.
  await a.area.click();
  await a.page.keyboard.press('Control+End');
  await b.area.click();
  await b.page.keyboard.press('Control+Home');
  await Promise.all([
    a.page.keyboard.type('  # by Ada', { delay: 15 }),
    b.page.keyboard.type('# Grace was here\n', { delay: 15 }),
  ]);
  await until(async () => {
    const [x, y] = [await value(a.area), await value(b.area)];
    return x === y && x.includes('# by Ada') && x.includes('# Grace was here');
  }, 'both browsers show both edits');
  out.merged = await value(a.area);
  // Each sees the other in the cell.
  await until(async () => (await a.page.locator('.in-cell .who').count()) > 0, 'Ada sees Grace in the cell');
  out.presenceA = await a.page.locator('.in-cell .who').first().innerText();
  // Grace's caret is drawn in Ada's editor where Grace left it: at the start of the second
  // line, after the line she typed.
  await until(async () => {
    const c = await remoteCaret(a.area);
    return c !== null && c.line === 1 && Math.abs(c.x) <= 2;
  }, "Ada sees Grace's caret after Grace's line").catch(() => {});
  out.graceCaret = await remoteCaret(a.area);
  // Grace moves her caret to the end of her line; Ada sees it move there.
  await b.page.keyboard.press('ArrowUp');
  await b.page.keyboard.press('End');
  await until(async () => {
    const c = await remoteCaret(a.area);
    return c !== null && c.line === 0 && c.x > 50;
  }, "Ada sees Grace's caret move").catch(() => {});
  out.graceCaretMoved = await remoteCaret(a.area);
  await until(async () => (await a.page.locator('[data-pending="0"]').count()) > 0, "Ada's edits are saved");
  await until(async () => (await b.page.locator('[data-pending="0"]').count()) > 0, "Grace's edits are saved");
  await a.page.screenshot({ path: `${shots}/coedit-ada.png` });
  await b.page.screenshot({ path: `${shots}/coedit-grace.png` });
  out.violations = await axe(a.page);
  // The page keeps the theme it started with; its toggle changes it.
  await a.page.getByRole('button', { name: 'Use the dark theme' }).click();
  await a.page.locator('html[data-theme="dark"]').waitFor({ timeout: 5000 });
  await a.page.screenshot({ path: `${shots}/coedit-ada-dark.png` });
  out.violationsDark = await axe(a.page);
  await a.page.getByRole('button', { name: 'Use the light theme' }).click();

  // Keystroke to visible in the other browser, at the other node.
  const times = [];
  await a.area.click();
  await a.page.keyboard.press('Control+End');
  for (let i = 0; i < 30; i += 1) {
    const ch = String.fromCharCode(97 + (i % 26));
    const before = await value(b.area);
    const t0 = Date.now();
    await a.page.keyboard.type(ch);
    await until(async () => (await value(b.area)).length > before.length, `keystroke ${i} reaches Grace`, 10000);
    times.push(Date.now() - t0);
  }
  times.sort((x, y) => x - y);
  out.latency = { p50: times[Math.floor(times.length * 0.5)], p95: times[Math.floor(times.length * 0.95)], n: times.length };
  await until(async () => (await a.page.locator('[data-pending="0"]').count()) > 0, 'the last keystrokes are saved');
  await until(async () => (await value(b.area)) === (await value(a.area)), 'Grace has the latency keystrokes');

  // Grace loses her connection: she keeps typing, Ada types too; when the line is back both
  // have both.
  await cut();
  await b.page.locator('[data-state="offline"]').waitFor({ timeout: 15000 });
  out.offlineShown = await b.page.locator('.live-state').innerText();
  await b.area.click();
  await b.page.keyboard.press('Control+Home');
  await b.page.keyboard.type('# typed offline\n', { delay: 5 });
  await a.area.click();
  await a.page.keyboard.press('Control+End');
  await a.page.keyboard.type(' # while Grace was away', { delay: 5 });
  await until(async () => (await a.page.locator('[data-pending="0"]').count()) > 0, "Ada's words are saved");
  out.offlineGrace = await value(b.area);
  restore();
  await until(async () => {
    const [x, y] = [await value(a.area), await value(b.area)];
    return x === y && x.includes('# typed offline') && x.includes('# while Grace was away');
  }, 'both have both after the outage');
  await until(async () => (await b.page.locator('[data-pending="0"][data-state="live"]').count()) > 0, "Grace's offline words are saved");
  await b.page.screenshot({ path: `${shots}/coedit-after-outage.png` });
  out.final = await value(a.area);

  // Ada adds a notebook from a .ipynb file, then updates it in place from a newer one.
  const nbFile = (sources) =>
    Buffer.from(
      JSON.stringify({
        nbformat: 4,
        nbformat_minor: 5,
        metadata: {},
        cells: sources.map((s, i) => ({ cell_type: 'code', id: `u${i}`, metadata: {}, source: s, outputs: [], execution_count: null })),
      }),
    );
  await a.page.getByRole('button', { name: 'Done editing' }).click();
  await a.page
    .getByLabel('Add a notebook from a .ipynb file')
    .setInputFiles({ name: 'Folding.ipynb', mimeType: 'application/json', buffer: nbFile(['fold = 1']) });
  const added = a.page.locator('article.notebook', { has: a.page.getByRole('heading', { name: 'Folding' }) });
  await added.waitFor({ timeout: 15000 });
  out.uploaded = await added.locator('.cell').count();
  await added
    .getByLabel('Update from .ipynb')
    .setInputFiles({ name: 'Folding.ipynb', mimeType: 'application/json', buffer: nbFile(['fold = 2', 'plot(fold)']) });
  const status = added.getByRole('status');
  await status.waitFor({ timeout: 15000 });
  out.reimported = await status.innerText();
  out.reimportedCells = await added.locator('.cell').count();
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
