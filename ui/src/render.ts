// A notebook's parts rendered as Jupyter renders them: Markdown with math, code with
// highlighting, outputs as images, text, sanitised HTML, and tracebacks with ANSI colours.
// Everything that becomes HTML is sanitised or produced from escaped text, and nothing uses
// inline styles (the node's content security policy forbids them): math is MathML, colours are
// classes.
import { AnsiUp } from 'ansi_up';
import DOMPurify from 'dompurify';
import hljs from 'highlight.js/lib/core';
import python from 'highlight.js/lib/languages/python';
import { marked } from 'marked';

hljs.registerLanguage('python', python);

// An image in an output's HTML without a text alternative gets one.
DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'IMG' && !node.hasAttribute('alt')) node.setAttribute('alt', "An image from the cell's output");
});

/// KaTeX, loaded only for pages that show math.
type Katex = typeof import('katex');
let katex: Promise<Katex> | null = null;
function loadKatex(): Promise<Katex> {
  katex ??= import('katex');
  return katex;
}

const MATH = /(\$\$[\s\S]+?\$\$|\\\[[\s\S]+?\\\]|(?<![\\$])\$(?!\s)[^$\n]+?(?<!\s)\$)/g;

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

async function texToMathml(tex: string, display: boolean): Promise<string> {
  const k = (await loadKatex()).default;
  return k.renderToString(tex, { output: 'mathml', displayMode: display, throwOnError: false, trust: false });
}

/// Markdown (GitHub's flavour) with `$…$`, `$$…$$` and `\[…\]` math, as sanitised HTML.
export async function markdown(source: string): Promise<string> {
  // Math is taken out before Markdown sees it (so `_` and `*` in it stay TeX), and put back
  // as MathML after the HTML is sanitised.
  const maths: { tex: string; display: boolean }[] = [];
  const protectedSource = source.replace(MATH, (m) => {
    const display = m.startsWith('$$') || m.startsWith('\\[');
    const tex = display ? m.slice(2, -2) : m.slice(1, -1);
    maths.push({ tex, display });
    return `@@MATH${maths.length - 1}@@`;
  });
  const html = DOMPurify.sanitize(await marked.parse(protectedSource, { gfm: true }));
  if (maths.length === 0) return html;
  const rendered = await Promise.all(maths.map((m) => texToMathml(m.tex, m.display)));
  return html.replace(/@@MATH(\d+)@@/g, (_, i) => rendered[Number(i)] ?? '');
}

/// Python source as highlighted HTML (classes only).
export function highlight(source: string): string {
  return hljs.highlight(source, { language: 'python', ignoreIllegals: true }).value;
}

/// Text with ANSI colour codes (a traceback) as HTML with colour classes.
export function ansi(text: string): string {
  const a = new AnsiUp();
  a.use_classes = true;
  return a.ansi_to_html(text);
}

type Output = Record<string, unknown>;

function joined(v: unknown): string {
  if (Array.isArray(v)) return v.join('');
  return typeof v === 'string' ? v : '';
}

/// One output: its kind for the page, and its HTML.
export async function output(o: Output): Promise<{ kind: string; html: string }> {
  switch (o.output_type) {
    case 'stream':
      return { kind: `is-stream is-${o.name === 'stderr' ? 'stderr' : 'stdout'}`, html: `<pre>${ansi(joined(o.text))}</pre>` };
    case 'error': {
      const traceback = Array.isArray(o.traceback) ? (o.traceback as string[]).join('\n') : `${o.ename}: ${o.evalue}`;
      return { kind: 'is-error', html: `<pre>${ansi(traceback)}</pre>` };
    }
    case 'execute_result':
    case 'display_data': {
      const data = (o.data ?? {}) as Record<string, unknown>;
      const png = joined(data['image/png']);
      if (png) return { kind: 'is-image', html: `<img alt="A figure from the cell's output" src="data:image/png;base64,${escapeHtml(png.replace(/\s/g, ''))}">` };
      const jpeg = joined(data['image/jpeg']);
      if (jpeg) return { kind: 'is-image', html: `<img alt="A figure from the cell's output" src="data:image/jpeg;base64,${escapeHtml(jpeg.replace(/\s/g, ''))}">` };
      const svg = joined(data['image/svg+xml']);
      if (svg) {
        // As an image: scripts in it never run.
        const uri = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
        return { kind: 'is-image', html: `<img alt="A figure from the cell's output" src="${uri}">` };
      }
      const html = joined(data['text/html']);
      if (html) return { kind: 'is-html', html: DOMPurify.sanitize(html) };
      const md = joined(data['text/markdown']);
      if (md) return { kind: 'is-markdown', html: await markdown(md) };
      const latex = joined(data['text/latex']);
      if (latex) return { kind: 'is-math', html: await markdown(latex.includes('$') ? latex : `$$${latex}$$`) };
      return { kind: 'is-text', html: `<pre>${escapeHtml(joined(data['text/plain']))}</pre>` };
    }
    default:
      return { kind: 'is-unknown', html: `<pre>${escapeHtml(JSON.stringify(o))}</pre>` };
  }
}
