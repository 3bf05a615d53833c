import { useEffect, useState } from 'preact/hooks';
import {
  type ChangeView,
  type CommentView,
  type CreditsView,
  type NotebookAuthorship,
  type NotebookView,
  type ProjectSummary,
  type ProjectView,
  authorship,
  comments,
  credits,
  history,
  kernel,
  importNotebook,
  ipynbUrl,
  reimportNotebook,
  notebook,
  project,
  projects,
  runCell,
} from './api';
import { highlight, markdown } from './render';
import { Html, JobForm, Outputs, Provenance, nodeName, seconds } from './runs';

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/// The projects this browser may see: public ones, and the signed-in user's.
export function ProjectsPage() {
  const [list, setList] = useState<ProjectSummary[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    projects()
      .then(setList)
      .catch((e) => setError(message(e)));
  }, []);
  if (error) return <p class="error" role="alert">{error}</p>;
  if (!list) return <p class="status" role="status">Loading projects…</p>;
  return (
    <section aria-labelledby="projects-title">
      <h1 id="projects-title">Projects</h1>
      {list.length === 0 && <p class="note">No projects you may see yet.</p>}
      <ul class="projects">
        {list.map((p) => (
          <li key={p.id}>
            <a href={`#/projects/${p.id}`}>{p.title}</a>{' '}
            <span class="sub">
              {p.visibility} · {p.notebooks} notebook{p.notebooks === 1 ? '' : 's'}
              {p.role ? ` · you are ${p.role}` : ''}
            </span>
          </li>
        ))}
      </ul>
    </section>
  );
}

/// The live editor (with CodeMirror), loaded only when someone edits.
type Editor = typeof import('./editor').LiveEditor;
let editorModule: Promise<Editor> | null = null;

function LazyLiveEditor(props: { project: string; notebook: string; title: string }) {
  const [editor, setEditor] = useState<{ E: Editor } | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    editorModule ??= import('./editor').then((m) => m.LiveEditor);
    editorModule.then((E) => setEditor({ E })).catch((e) => {
      editorModule = null;
      setError(message(e));
    });
  }, []);
  if (error) return <p class="error" role="alert">The editor could not be loaded ({error}); reload the page to try again.</p>;
  if (!editor) return <p class="status">Opening the notebook for editing…</p>;
  return <editor.E {...props} />;
}

/// Colours for authors in the credit view (Okabe–Ito, colour-blind safe), as classes.
const AUTHOR_CLASSES = 8;

interface Names {
  name(author: string | null): string;
  orcid(author: string | null): string | null;
  index(author: string | null): number;
}

function names(p: ProjectView, c: CreditsView | null): Names {
  const order = (c?.authors ?? []).map((s) => s.author);
  for (const m of p.members) if (!order.includes(m.author)) order.push(m.author);
  const byAuthor = new Map<string, string>();
  for (const m of p.members) if (m.name) byAuthor.set(m.author, m.name);
  for (const s of c?.authors ?? []) if (s.name) byAuthor.set(s.author, s.name);
  const orcids = new Map((c?.authors ?? []).filter((s) => s.orcid_verified).map((s) => [s.author, s.orcid_verified as string]));
  return {
    name: (a) => (a ? (byAuthor.get(a) ?? `author ${a.slice(0, 8)}`) : 'an author no longer known'),
    orcid: (a) => (a ? (orcids.get(a) ?? null) : null),
    index: (a) => (a ? order.indexOf(a) % AUTHOR_CLASSES : AUTHOR_CLASSES),
  };
}

/** Reads a chosen .ipynb file as JSON. */
async function ipynbOf(input: HTMLInputElement): Promise<{ name: string; json: unknown } | null> {
  const file = input.files?.[0];
  input.value = '';
  if (!file) return null;
  try {
    return { name: file.name.replace(/\.ipynb$/i, ''), json: JSON.parse(await file.text()) };
  } catch {
    throw new Error(`${file.name} is not a notebook file (not JSON)`);
  }
}

function Markdown({ source }: { source: string }) {
  const [html, setHtml] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    void markdown(source).then((h) => live && setHtml(h));
    return () => {
      live = false;
    };
  }, [source]);
  return html === null ? <div class="md pending">{source}</div> : <Html class="md" html={html} />;
}

/// A cell's source coloured by who wrote each part.
function Credited({ spans, who }: { spans: { author: string | null; text: string }[]; who: Names }) {
  return (
    <pre class="source credited">
      {spans.map((s, i) => (
        <span key={i} class={`by by-${who.index(s.author)}`} title={`written by ${who.name(s.author)}`} data-author={s.author ?? ''}>
          {s.text}
        </span>
      ))}
    </pre>
  );
}

function Notebook({
  p,
  id,
  who,
  showCredit,
  onEdit,
}: {
  p: ProjectView;
  id: string;
  who: Names;
  showCredit: boolean;
  onEdit?: () => void;
}) {
  const [nb, setNb] = useState<NotebookView | null>(null);
  // Cells running now, with the outputs that arrived so far.
  const [running, setRunning] = useState<Map<string, Record<string, unknown>[]>>(new Map());
  const [ran, setRan] = useState<string | null>(null);
  const [spans, setSpans] = useState<NotebookAuthorship | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [updated, setUpdated] = useState<string | null>(null);
  useEffect(() => {
    notebook(p.id, id)
      .then(setNb)
      .catch((e) => setError(message(e)));
  }, [p.id, id]);
  useEffect(() => {
    if (showCredit && !spans) {
      authorship(p.id, id)
        .then(setSpans)
        .catch((e) => setError(message(e)));
    }
  }, [showCredit, p.id, id, spans]);
  if (error && !nb) return <p class="error" role="alert">{error}</p>;
  if (!nb) return <p class="status">Loading the notebook…</p>;
  const run = (cell: string) => {
    setError(null);
    setRan(null);
    setRunning((r) => new Map(r).set(cell, []));
    const arrived: Record<string, unknown>[] = [];
    runCell(p.id, nb.id, cell, (o) => {
      arrived.push(o);
      setRunning((r) => new Map(r).set(cell, [...arrived]));
    })
      .then((v) => {
        setNb((old) => old && { ...old, cells: old.cells.map((c) => (c.id === cell ? v.cell : c)) });
        setRan(`Ran at ${nodeName(v.node, v.node_name)} in ${seconds(v.ended_at_ms - v.started_at_ms)}: ${v.status}.`);
      })
      .catch((e) => setError(`The cell did not run: ${message(e)}`))
      .finally(() =>
        setRunning((r) => {
          const next = new Map(r);
          next.delete(cell);
          return next;
        }),
      );
  };
  const control = (action: 'interrupt' | 'restart') =>
    kernel(p.id, nb.id, action)
      .then(() => setRan(action === 'interrupt' ? 'Interrupted.' : 'The kernel was restarted: its variables are gone.'))
      .catch((e) => setError(message(e)));
  const spansOf = new Map((spans?.cells ?? []).map((c) => [c.cell, c.spans]));
  return (
    <article class="notebook" aria-labelledby={`nb-${nb.id}`}>
      <header class="nb-head">
        <h2 id={`nb-${nb.id}`}>{nb.title}</h2>
        <span class="nb-actions">
          {onEdit && (
            <button type="button" onClick={onEdit}>
              Edit together
            </button>
          )}
          {onEdit && (
            <button type="button" onClick={() => void control('restart')} title="Start the notebook's kernel afresh: its variables are lost">
              Restart kernel
            </button>
          )}
          <a href={ipynbUrl(p.id, nb.id)} download={`${nb.title}.ipynb`}>
            Download .ipynb
          </a>
          {onEdit && (
            <label class="file-pick">
              Update from .ipynb
              <input
                type="file"
                accept=".ipynb,application/x-ipynb+json,application/json"
                onChange={(e) =>
                  ipynbOf(e.currentTarget)
                    .then((f) => (f ? reimportNotebook(p.id, nb.id, f.json) : null))
                    .then((r) => {
                      if (r) {
                        setNb(r.notebook);
                        setUpdated(`Updated from the file: ${r.summary}.`);
                      }
                    })
                    .catch((err) => setError(message(err)))
                }
              />
            </label>
          )}
        </span>
      </header>
      {onEdit && <JobForm project={p.id} notebook={nb.id} />}
      {updated && (
        <p class="status" role="status">
          {updated}
        </p>
      )}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {ran && (
        <p class="status" role="status">
          {ran}
        </p>
      )}
      {nb.cells.map((c) => {
        const credited = showCredit ? spansOf.get(c.id) : undefined;
        return (
          <div key={c.id} class={`cell ${c.kind}`} data-cell={c.id}>
            {c.kind === 'code' && (
              <div class="prompt">
                <span aria-hidden="true">[{running.has(c.id) ? '*' : (c.execution_count ?? ' ')}]</span>
                {onEdit &&
                  (running.has(c.id) ? (
                    <button type="button" class="run" onClick={() => void control('interrupt')} aria-label="Interrupt the cell">
                      ■
                    </button>
                  ) : (
                    <button
                      type="button"
                      class="run"
                      onClick={() => run(c.id)}
                      aria-label="Run the cell at the data"
                      title="Run at the node holding the project's data"
                    >
                      ▶
                    </button>
                  ))}
              </div>
            )}
            <div class="body">
              {credited ? (
                <Credited spans={credited} who={who} />
              ) : c.kind === 'markdown' ? (
                <Markdown source={c.source} />
              ) : c.kind === 'code' ? (
                <pre class="source">
                  <code class="hljs language-python" dangerouslySetInnerHTML={{ __html: highlight(c.source) }} />
                </pre>
              ) : (
                <pre class="source raw">{c.source}</pre>
              )}
              {c.kind === 'code' && <Outputs project={p.id} outputs={running.get(c.id) ?? c.outputs} />}
              {c.kind === 'code' && c.run && !running.has(c.id) && <Provenance run={c.run} name={who.name} />}
            </div>
          </div>
        );
      })}
    </article>
  );
}

/// A project: its notebooks as Jupyter renders them, who is in it, who wrote what, what was
/// said, and its signed history.
export function ProjectPage({ id }: { id: string }) {
  const [p, setP] = useState<ProjectView | null>(null);
  const [c, setC] = useState<CreditsView | null>(null);
  const [log, setLog] = useState<ChangeView[] | null>(null);
  const [said, setSaid] = useState<CommentView[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [showCredit, setShowCredit] = useState(false);
  const [editing, setEditing] = useState<string | null>(null);
  useEffect(() => {
    project(id)
      .then(setP)
      .catch((e) => setError(message(e)));
    credits(id)
      .then(setC)
      .catch(() => setC(null));
    history(id)
      .then(setLog)
      .catch(() => setLog([]));
    comments(id)
      .then(setSaid)
      .catch(() => setSaid([]));
  }, [id]);
  if (error) return <p class="error" role="alert">{error}</p>;
  if (!p) return <p class="status" role="status">Loading the project…</p>;
  const who = names(p, c);
  return (
    <section aria-labelledby="project-title" class="project">
      <h1 id="project-title">{p.title}</h1>
      {p.description && <p>{p.description}</p>}
      <p class="sub">
        {p.visibility}
        {p.role ? ` · you are ${p.role}` : ''} · made {new Date(p.created_at * 1000).toLocaleDateString()}
      </p>
      <div class="project-grid">
        <div>
          <label class="check credit-toggle">
            <input type="checkbox" checked={showCredit} onChange={() => setShowCredit(!showCredit)} />
            Show who wrote what
          </label>
          {showCredit && c && (
            <ul class="legend-list" aria-label="Authors">
              {c.authors.map((s) => (
                <li key={s.author}>
                  <span class={`swatch by-${who.index(s.author)}`} aria-hidden="true" /> {who.name(s.author)}
                  {s.orcid_verified && (
                    <a class="orcid" href={`https://orcid.org/${s.orcid_verified}`} title="ORCID iD verified" rel="noopener noreferrer">
                      ORCID ✓ {s.orcid_verified}
                    </a>
                  )}{' '}
                  <span class="sub">
                    {s.chars} characters, {s.changes} changes
                  </span>
                </li>
              ))}
            </ul>
          )}
          {p.notebooks.length === 0 && <p class="note">No notebooks yet.</p>}
          {(p.role === 'editor' || p.role === 'owner') && (
            <label class="file-pick">
              Add a notebook from a .ipynb file
              <input
                type="file"
                accept=".ipynb,application/x-ipynb+json,application/json"
                onChange={(e) =>
                  ipynbOf(e.currentTarget)
                    .then((f) => (f ? importNotebook(p.id, f.name || 'Notebook', f.json) : null))
                    .then((made) => (made ? project(id).then(setP) : undefined))
                    .catch((err) => setError(message(err)))
                }
              />
            </label>
          )}
          {p.notebooks.map((nb) =>
            editing === nb.id ? (
              <div key={nb.id}>
                <button type="button" onClick={() => setEditing(null)}>
                  Done editing
                </button>
                <LazyLiveEditor project={p.id} notebook={nb.id} title={nb.title} />
              </div>
            ) : (
              <Notebook
                key={nb.id}
                p={p}
                id={nb.id}
                who={who}
                showCredit={showCredit}
                onEdit={p.role === 'editor' || p.role === 'owner' ? () => setEditing(nb.id) : undefined}
              />
            ),
          )}
        </div>
        <aside aria-label="About the project">
          <h2>Members</h2>
          <ul class="members-list">
            {p.members.map((m) => (
              <li key={m.author}>
                {who.name(m.author)} <span class="sub">{m.role}</span>
                {who.orcid(m.author) && <span class="sub"> · ORCID ✓</span>}
              </li>
            ))}
          </ul>
          <h2>Data</h2>
          {p.datasets.length === 0 ? (
            <p class="note">No datasets referenced: cells run on this node.</p>
          ) : (
            <>
              <p class="note">Cells run at the node holding these.</p>
              <ul class="datasets-list">
                {p.datasets.map((d) => (
                  <li key={d.id}>
                    {d.product} <span class="sub">at {nodeName(d.node, d.node_name)}</span>
                    <div class="sub hash">blake3 {d.checksum.slice(0, 16)}…</div>
                  </li>
                ))}
              </ul>
            </>
          )}
          <h2>Comments</h2>
          {said === null ? (
            <p class="status">Loading…</p>
          ) : said.length === 0 ? (
            <p class="note">None yet.</p>
          ) : (
            <ul class="comments">
              {said.map((s) => (
                <li key={s.id}>
                  <strong>{who.name(s.author)}</strong> <span class="sub">{new Date(s.created_at * 1000).toLocaleString()}</span>
                  <p>{s.text}</p>
                </li>
              ))}
            </ul>
          )}
          <h2>History</h2>
          <p class="note">Every change is signed by its author.</p>
          {log === null ? (
            <p class="status">Loading…</p>
          ) : (
            <ol class="history">
              {log.map((e) => (
                <li key={e.hash}>
                  {who.name(e.author)} <span class="sub">{new Date(e.time * 1000).toLocaleString()} · {e.ops} operation{e.ops === 1 ? '' : 's'}</span>
                  <div class="sub hash">{e.hash.slice(0, 16)}</div>
                </li>
              ))}
            </ol>
          )}
        </aside>
      </div>
    </section>
  );
}
