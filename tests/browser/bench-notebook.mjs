// Time until a notebook is readable after navigation, in Debian's Chromium: the project page of
// a running node (fetching the notebook through the API and rendering Markdown, math, code and
// figures in the browser) against the same notebook as static HTML made beforehand by
// nbconvert (the browser only paints it), each navigated to `runs` times from a blank page.
// "Readable": every cell is in the page and every figure decoded.
//
// Usage: node bench-notebook.mjs <project page URL> <nbconvert HTML file> <cells> <figures> <runs>
// Prints one JSON object: each side's times in milliseconds.
import { launch } from './chromium.mjs';

const [pageUrl, staticFile, cells, figures, runs] = process.argv.slice(2);
const browser = await launch();
const out = { orrery: [], static: [] };
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const readable = (selector, imgs) =>
    page.waitForFunction(
      ([selector, cells, imgs, figures]) => {
        const all = document.querySelectorAll(selector).length;
        const pics = [...document.querySelectorAll(imgs)];
        return all >= cells && pics.length >= figures && pics.every((i) => i.complete && i.naturalWidth > 0);
      },
      [selector, Number(cells), imgs, Number(figures)],
      { timeout: 60000, polling: 'raf' },
    );
  for (let i = 0; i < Number(runs); i += 1) {
    for (const side of ['orrery', 'static']) {
      await page.goto('about:blank');
      const started = Date.now();
      if (side === 'orrery') {
        await page.goto(pageUrl, { waitUntil: 'commit' });
        await readable('[data-cell]', '.output.is-image img');
        // Math arrives with its renderer, loaded on demand: readable means rendered.
        await page.waitForFunction(() => document.querySelectorAll('.md.pending').length === 0, null, {
          timeout: 60000,
          polling: 'raf',
        });
      } else {
        await page.goto(`file://${staticFile}`, { waitUntil: 'commit' });
        await readable('.jp-Cell, .cell', 'img');
      }
      out[side].push(Date.now() - started);
    }
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
