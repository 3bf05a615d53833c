import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { addCell, deleteCell, moveCell } from './api';
import { LiveNotebook, type LiveView, type Presence } from './live';

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Where a caret at `at` in `before` goes once the text is `after` (one changed region). */
function moved(before: string, after: string, at: number): number {
  let start = 0;
  while (start < before.length && start < after.length && before[start] === after[start]) start++;
  let end = 0;
  while (end < before.length - start && end < after.length - start && before[before.length - 1 - end] === after[after.length - 1 - end]) end++;
  if (at <= start) return at;
  if (at >= before.length - end) return at + after.length - before.length;
  return after.length - end;
}

function CellText({ id, text, label, live }: { id: string; text: string; label: string; live: LiveNotebook }) {
  const ref = useRef<HTMLTextAreaElement>(null);
  // What the text area showed before the user's latest input.
  const shown = useRef(text);
  useLayoutEffect(() => {
    const area = ref.current;
    if (!area) return;
    shown.current = text;
    if (area.value === text) return;
    // A remote change: the caret stays where it was in the text around it.
    const [s, e] = [area.selectionStart, area.selectionEnd];
    const before = area.value;
    area.value = text;
    if (document.activeElement === area) area.setSelectionRange(moved(before, text, s), moved(before, text, e));
  }, [text]);
  const lines = Math.max(2, text.split('\n').length);
  return (
    <textarea
      ref={ref}
      class="source-edit"
      aria-label={label}
      data-cell={id}
      spellcheck={false}
      rows={lines}
      defaultValue={text}
      onInput={(e) => {
        const after = (e.currentTarget as HTMLTextAreaElement).value;
        const before = shown.current;
        shown.current = after;
        live.type(id, before, after);
      }}
      onFocus={() => live.focus(id)}
    />
  );
}

const STATE_TEXT = {
  connecting: 'Connecting…',
  live: 'Live',
  offline: 'Offline: keep typing, your edits are kept and sent when the connection returns',
  stopped: 'Stopped',
};

/// A notebook open for live co-editing: typing shows at once, others' edits merge in, and
/// every change is signed with the signed-in user's key by this node.
export function LiveEditor({ project, notebook, title }: { project: string; notebook: string; title: string }) {
  const [view, setView] = useState<LiveView | null>(null);
  const [live, setLive] = useState<LiveNotebook | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const l = new LiveNotebook(project, notebook, setView);
    setLive(l);
    return () => l.stop();
  }, [project, notebook]);
  if (!live || !view) return <p class="status">Opening the notebook for editing…</p>;
  const here = (cell: string): Presence[] => view.presence.filter((p) => p.cell === cell);
  const act = (f: Promise<unknown>) => f.catch((e) => setError(message(e)));
  return (
    <article class="notebook editing" aria-labelledby={`nb-edit-${notebook}`}>
      <header class="nb-head">
        <h2 id={`nb-edit-${notebook}`}>{title}</h2>
        <span class={`live-state ${view.state}`} role="status" data-state={view.state} data-pending={view.pending}>
          {STATE_TEXT[view.state]}
          {view.state === 'live' && (view.pending ? ` · saving ${view.pending} edit${view.pending === 1 ? '' : 's'}…` : ' · all saved')}
        </span>
      </header>
      {view.presence.length > 0 && (
        <p class="presence" aria-label="Also here">
          Also here: {view.presence.map((p) => p.name).join(', ')}
        </p>
      )}
      {error && <p class="error" role="alert">{error}</p>}
      {view.notice && (
        <div class="notice" role="alert">
          <p>{view.notice.message}</p>
          {view.notice.lost && (
            <details open>
              <summary>What you typed</summary>
              <pre>{view.notice.lost}</pre>
            </details>
          )}
        </div>
      )}
      {view.cells.map((c, i) => (
        <div key={c.id} class={`cell ${c.kind}`} data-cell={c.id}>
          <div class="prompt" aria-hidden="true">
            {c.kind === 'code' ? `[${c.execution_count ?? ' '}]` : c.kind === 'markdown' ? 'md' : 'raw'}
          </div>
          <div class="body">
            {here(c.id).length > 0 && (
              <p class="in-cell">
                {here(c.id).map((p) => (
                  <span key={p.author} class="who">
                    {p.name}
                  </span>
                ))}
              </p>
            )}
            <CellText id={c.id} text={view.text(c.id)} label={`Cell ${i + 1} (${c.kind})`} live={live} />
            <div class="cell-tools">
              <button type="button" onClick={() => act(addCell(project, notebook, 'code', i + 1))}>
                Add code cell below
              </button>
              <button type="button" onClick={() => act(addCell(project, notebook, 'markdown', i + 1))}>
                Add Markdown cell below
              </button>
              {i > 0 && (
                <button type="button" onClick={() => act(moveCell(project, notebook, c.id, i - 1))}>
                  Move cell {i + 1} up
                </button>
              )}
              {i < view.cells.length - 1 && (
                <button type="button" onClick={() => act(moveCell(project, notebook, c.id, i + 1))}>
                  Move cell {i + 1} down
                </button>
              )}
              <button type="button" onClick={() => act(deleteCell(project, notebook, c.id))}>
                Delete cell {i + 1}
              </button>
            </div>
          </div>
        </div>
      ))}
      {view.cells.length === 0 && (
        <button type="button" onClick={() => act(addCell(project, notebook, 'code'))}>
          Add a cell
        </button>
      )}
    </article>
  );
}
